//! The ingress Lambda: configuration from the environment (failing fast
//! with what is missing), clients built once, then the runtime loop.

use hookflow_aws::AwsConfig;
use hookflow_aws::ingress::Ingress;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;
use hookflow_io::{Format, Logger};
use lambda_http::{Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = AwsConfig::from_env()?;
    let sdk = hookflow_aws::sdk::load().await;
    let ingress = std::sync::Arc::new(Ingress {
        store: Store::from_config(&sdk, &config),
        secrets: Secrets::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.secrets_prefix),
        sender: hookflow_aws::sdk::sender(&sdk, &config)?,
        logger: Logger::new(Format::Json, std::iter::empty()).min_level(&config.log_level),
        unknown_routes: Default::default(),
    });
    lambda_http::run(service_fn(move |req: Request| {
        let ingress = ingress.clone();
        async move { Ok::<_, lambda_http::Error>(ingress::handle(&ingress, req).await) }
    }))
    .await
}
