//! Idempotency keys: claimed atomically, completed with the run, released on failure.

use super::*;

impl Table {
    /// Claims an idempotency key: a conditional put that succeeds when the
    /// key is new or its record expired, and otherwise returns the record it
    /// found (in one request, as AWS Lambda Powertools does it). The claim
    /// holds for `in_progress` (a request that dies before answering frees
    /// its key then); the answered record, written with the run, holds for
    /// the trigger's whole window.
    pub async fn claim(&self, scope: &str, now_ms: i64, in_progress: Duration) -> Result<Claim, Error> {
        Ok(self.claim_run(scope, now_ms, in_progress).await?.0)
    }

    /// [`Table::claim`], with the run an answered record names while its
    /// messages are not confirmed queued (`accepted`, not yet `completed`:
    /// the run's outbox may hold what was never sent).
    pub async fn claim_run(
        &self,
        scope: &str,
        now_ms: i64,
        in_progress: Duration,
    ) -> Result<(Claim, Option<String>), Error> {
        let mut item = key(keys::idempotency(scope), keys::IDEM);
        item.insert("status".into(), s("in_progress"));
        item.insert("expires_at".into(), n(now_ms / 1000 + in_progress.as_secs() as i64));
        // This claim's own mark: the SDK's retry of a claim whose answer
        // was lost finds it, and the claim is ours, not another request's
        // in progress (which would answer 409 until it expired).
        item.insert("claim".into(), s(uuid::Uuid::now_v7().simple().to_string()));
        let out = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now_ms / 1000))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(_) => Ok((Claim::Claimed, None)),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(c)) if c.item() == Some(&item) => {
                    Ok((Claim::Claimed, None))
                }
                Some(PutItemError::ConditionalCheckFailedException(c)) => {
                    let old = c.item().cloned().unwrap_or_default();
                    match (get_s(&old, "status"), get_s(&old, "reply")) {
                        (Some(status @ ("completed" | "accepted")), Some(reply)) => serde_json::from_str(reply)
                            .map(|r| {
                                let unsent = status == "accepted";
                                (Claim::Completed(r), get_s(&old, "run_id").filter(|_| unsent).map(String::from))
                            })
                            .map_err(|e| Error::Malformed(format!("idempotency record {scope}: {e}"))),
                        _ => Ok((Claim::InProgress, None)),
                    }
                }
                _ => Err(Error::aws("DynamoDB", "PutItem", e)),
            },
        }
    }

    /// Marks an answered key `completed`: its run's messages are queued
    /// (best effort: a key left `accepted` only makes a retry send them
    /// again, under the same ids).
    pub async fn idempotency_sent(&self, scope: &str) -> Result<(), Error> {
        let out = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::idempotency(scope), keys::IDEM)))
            .update_expression("SET #s = :c")
            .condition_expression("#s = :a")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":c", s("completed"))
            .expression_attribute_values(":a", s("accepted"))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(Error::aws("DynamoDB", "UpdateItem", e)),
        }
    }

    /// Gives up a claim this request holds (it failed before answering), so
    /// the caller's retry is not answered 409.
    pub async fn release(&self, scope: &str) -> Result<(), Error> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key(keys::idempotency(scope), keys::IDEM)))
            .condition_expression("#s = :p")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":p", s("in_progress"))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|x| x.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(Error::aws("DynamoDB", "DeleteItem", e)),
        }
    }

    /// The reply stored under an idempotency scope, unless it expired or
    /// the request is still in progress.
    pub async fn idempotent_reply(&self, scope: &str, now_ms: i64) -> Result<Option<Reply>, Error> {
        let Some(item) = self.get(keys::idempotency(scope), keys::IDEM).await? else { return Ok(None) };
        // TTL deletion lags: an expired record is no record.
        if get_n(&item, "expires_at").is_some_and(|e| e <= now_ms / 1000)
            || !matches!(get_s(&item, "status"), Some("completed" | "accepted"))
        {
            return Ok(None);
        }
        Ok(get_s(&item, "reply").and_then(|r| serde_json::from_str(r).ok()))
    }
}
