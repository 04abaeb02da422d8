//! Creates the table, queues and DLQs the SAM template declares, with the
//! same shapes: for an emulator (`scripts/local-aws up`) and the tests.
//! In a real account the template creates them; this is never run there.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::Error;

/// Names and URLs of what [`create`] made.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub table: String,
    pub runs_queue_url: String,
    pub runs_dlq_url: String,
    pub deliveries_queue_url: String,
    pub deliveries_dlq_url: String,
}

/// How many receives before a message moves to its DLQ (the template's
/// `maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 5;

/// Creates `{prefix}-table`, `{prefix}-runs`, `{prefix}-deliveries` and
/// their `-dlq`s (existing ones are kept).
pub async fn create(
    ddb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    max_receives: u32,
) -> Result<Provisioned, Error> {
    let table = format!("{prefix}-table");
    let attr =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
    let key = |name: &str, t: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(t).build();
    let created = ddb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk").map_err(|e| Error::Malformed(e.to_string()))?)
        .attribute_definitions(attr("sk").map_err(|e| Error::Malformed(e.to_string()))?)
        .key_schema(key("pk", KeyType::Hash).map_err(|e| Error::Malformed(e.to_string()))?)
        .key_schema(key("sk", KeyType::Range).map_err(|e| Error::Malformed(e.to_string()))?)
        .send()
        .await;
    match created {
        Ok(_) => {
            ddb.update_time_to_live()
                .table_name(&table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name("expires_at")
                        .enabled(true)
                        .build()
                        .map_err(|e| Error::Malformed(e.to_string()))?,
                )
                .send()
                .await
                .map_err(|e| Error::aws("DynamoDB", "UpdateTimeToLive", e))?;
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(Error::aws("DynamoDB", "CreateTable", e)),
    }
    let queue = |name: String, redrive: Option<String>| async move {
        let mut req = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::MessageRetentionPeriod, (4 * 86_400).to_string())
            .attributes(QueueAttributeName::VisibilityTimeout, "180")
            .attributes(QueueAttributeName::MaximumMessageSize, crate::queue::MAX_MESSAGE_BYTES.to_string());
        if let Some(r) = redrive {
            req = req.attributes(QueueAttributeName::RedrivePolicy, r);
        } else {
            req = req.attributes(QueueAttributeName::MessageRetentionPeriod, (14 * 86_400).to_string());
        }
        let out = req.send().await.map_err(|e| Error::aws("SQS", "CreateQueue", e))?;
        out.queue_url.ok_or_else(|| Error::Malformed(format!("queue {name}: no URL")))
    };
    let arn = |url: String| async move {
        let out = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| Error::aws("SQS", "GetQueueAttributes", e))?;
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| Error::Malformed(format!("queue {url}: no ARN")))
    };
    let runs_dlq_url = queue(format!("{prefix}-runs-dlq"), None).await?;
    let deliveries_dlq_url = queue(format!("{prefix}-deliveries-dlq"), None).await?;
    let redrive = |dlq_arn: String| {
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()}).to_string()
    };
    let runs_queue_url = queue(format!("{prefix}-runs"), Some(redrive(arn(runs_dlq_url.clone()).await?))).await?;
    let deliveries_queue_url =
        queue(format!("{prefix}-deliveries"), Some(redrive(arn(deliveries_dlq_url.clone()).await?))).await?;
    Ok(Provisioned { table, runs_queue_url, runs_dlq_url, deliveries_queue_url, deliveries_dlq_url })
}
