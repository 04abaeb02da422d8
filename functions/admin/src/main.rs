//! The admin Lambda: configuration from the environment (failing fast with
//! what is missing), clients built once, then the admin API's router under
//! lambda_http. API Gateway's IAM authorisation checks the caller.

use std::sync::Arc;

use hookflow_admin::Admin;
use hookflow_aws::AwsConfig;
use hookflow_aws::admin::AwsBackend;
use hookflow_aws::secrets::Secrets;
use hookflow_aws::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = AwsConfig::from_env()?;
    let sdk = hookflow_aws::sdk::load().await;
    let backend = AwsBackend {
        store: Store::from_config(&sdk, &config),
        secrets: Secrets::new(aws_sdk_secretsmanager::Client::new(&sdk), &config.secrets_prefix),
        settings: config.subscriptions.clone(),
    };
    lambda_http::run(hookflow_admin::router(Arc::new(Admin { backend, token: None }))).await
}
