//! The dispatcher Lambda: configuration from the environment (failing fast
//! with what is missing), clients built once, then the runtime loop.

use std::sync::Arc;

use hookflow_aws::AwsConfig;
use hookflow_aws::dispatcher::Dispatcher;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_io::{Format, Logger};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = AwsConfig::from_env()?;
    let sdk = hookflow_aws::sdk::load().await;
    let store = Store::from_config(&sdk, &config);
    let dispatcher = Arc::new(Dispatcher {
        store,
        secrets: Secrets::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.secrets_prefix),
        sender: hookflow_aws::sdk::sender(&sdk, &config)?,
        logger: Logger::new(Format::Json, std::iter::empty()).min_level(&config.log_level),
        settings: config.subscriptions.clone(),
        ordered_retention: config.ordered_retention,
        dead_letter_arns: config.dead_letter_arns.clone(),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let dispatcher = dispatcher.clone();
        // The invocation's deadline (ms since the epoch): no send starts
        // that could not finish before it.
        // (One not in the future is not a deadline: an emulator's zero.)
        let deadline = i64::try_from(event.context.deadline)
            .ok()
            .filter(|&d| d > hookflow_core::ports::Clock::now_ms(&hookflow_core::ports::SystemClock));
        async move { Ok::<_, lambda_runtime::Error>(dispatcher.handle_by(event.payload, deadline).await) }
    }))
    .await
}
