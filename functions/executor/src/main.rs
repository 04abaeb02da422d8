//! The executor Lambda: configuration from the environment (failing fast
//! with what is missing), clients built once, then the runtime loop.

use std::sync::Arc;

use hookflow_aws::AwsConfig;
use hookflow_aws::executor::Executor;
use hookflow_aws::store::Store;
use hookflow_io::{Format, Logger};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = AwsConfig::from_env()?;
    let sdk = hookflow_aws::sdk::load().await;
    let executor = Arc::new(Executor {
        store: Store::from_config(&sdk, &config),
        logger: Logger::new(Format::Json, std::iter::empty()).min_level(&config.log_level),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let executor = executor.clone();
        async move { Ok::<_, lambda_runtime::Error>(executor.handle(event.payload).await) }
    }))
    .await
}
