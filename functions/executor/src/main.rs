//! The executor Lambda: configuration from the environment (failing fast
//! with what is missing), clients built once, then the runtime loop.

use std::sync::Arc;

use executor::Executor;
use hookflow_aws::AwsConfig;
use hookflow_aws::queue::Queues;
use hookflow_aws::store::Store;
use hookflow_aws::table::Table;
use hookflow_io::{Format, Logger};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = AwsConfig::from_env()?;
    let sdk = aws_config::load_from_env().await;
    let executor = Arc::new(Executor {
        store: Store {
            table: Table::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table, config.retention_days),
            queues: Queues::new(aws_sdk_sqs::Client::new(&sdk), &config.runs_queue_url, &config.deliveries_queue_url),
        },
        logger: Logger::new(Format::Json, std::iter::empty()).min_level(&config.log_level),
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
        let executor = executor.clone();
        async move { Ok::<_, lambda_runtime::Error>(executor.handle(event.payload).await) }
    }))
    .await
}
