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
    /// The FIFO queue of per-key ordered deliveries, and its (FIFO) DLQ.
    pub ordered_queue_url: String,
    pub ordered_dlq_url: String,
    /// The ARNs of the two delivery DLQs, which the dispatcher reads back
    /// into dead deliveries (`HOOKFLOW_DEAD_LETTER_ARNS`).
    pub dead_letter_arns: Vec<String>,
}

impl Provisioned {
    /// The queues, as the functions use them.
    pub fn queues(&self, sqs: &aws_sdk_sqs::Client) -> crate::queue::Queues {
        crate::queue::Queues::new(sqs.clone(), &self.runs_queue_url, &self.deliveries_queue_url)
            .with_ordered(Some(self.ordered_queue_url.clone()))
    }
}

/// How many receives before a message moves to its DLQ (the template's
/// `maxReceiveCount`).
pub const MAX_RECEIVES: u32 = 5;

/// The ordered queue's `maxReceiveCount`, the most SQS allows. Its
/// messages stay through their retries (each a receive, plus one per 12
/// hours of a longer wait) and are received, and handed back, with their
/// group's head while it fails: the count decides nothing (the dispatcher
/// ends a delivery by its own schedule and the queue's retention) but
/// where a message that never gets handled is read back from.
pub const ORDERED_MAX_RECEIVES: u32 = 1000;

/// Creates `{prefix}-table`, `{prefix}-runs`, `{prefix}-deliveries`,
/// `{prefix}-ordered.fifo` and their DLQs (existing ones are kept).
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
    // Retention: 4 days for the standard queues (each delay hop is a new
    // message); 14 for DLQs and the ordered queue, whose messages stay
    // through their retries.
    let queue = |name: String, redrive: Option<String>| async move {
        let days = if redrive.is_some() && !name.ends_with(".fifo") { 4 } else { 14 };
        let mut req = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::MessageRetentionPeriod, (days * 86_400).to_string())
            .attributes(QueueAttributeName::VisibilityTimeout, "180")
            .attributes(QueueAttributeName::MaximumMessageSize, crate::queue::MAX_MESSAGE_BYTES.to_string());
        if let Some(r) = redrive {
            req = req.attributes(QueueAttributeName::RedrivePolicy, r);
        }
        if name.ends_with(".fifo") {
            req = req
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::DeduplicationScope, "messageGroup")
                .attributes(QueueAttributeName::FifoThroughputLimit, "perMessageGroupId");
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
    let ordered_dlq_url = queue(format!("{prefix}-ordered-dlq.fifo"), None).await?;
    let redrive = |dlq_arn: String, max_receives: u32| {
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()}).to_string()
    };
    let runs_queue_url =
        queue(format!("{prefix}-runs"), Some(redrive(arn(runs_dlq_url.clone()).await?, max_receives))).await?;
    let deliveries_queue_url =
        queue(format!("{prefix}-deliveries"), Some(redrive(arn(deliveries_dlq_url.clone()).await?, max_receives)))
            .await?;
    let (deliveries_dlq_arn, ordered_dlq_arn) =
        (arn(deliveries_dlq_url.clone()).await?, arn(ordered_dlq_url.clone()).await?);
    let ordered_queue_url =
        queue(format!("{prefix}-ordered.fifo"), Some(redrive(ordered_dlq_arn.clone(), ORDERED_MAX_RECEIVES))).await?;
    Ok(Provisioned {
        table,
        runs_queue_url,
        runs_dlq_url,
        deliveries_queue_url,
        deliveries_dlq_url,
        ordered_queue_url,
        ordered_dlq_url,
        dead_letter_arns: vec![deliveries_dlq_arn, ordered_dlq_arn],
    })
}
