//! Destination limits shared by every dispatcher: one item a key
//! (`LIMIT#<key>`, [`keys::limit`]) holding its pace's state `tat` (µs,
//! wall clock), the places in flight `p0…` (each until when it is held,
//! ms), the line of deliveries waiting for one (`line`, µs) and the recent
//! attempts' mean (`mean`, ms).
//!
//! A pace's state is kept under its own key ([`RateLimit::pace_key`]):
//! a limit changed while a backlog waits starts afresh.
//!
//! **A reservation is one conditional write, no read**
//! ([`Table::reserve`]): an idle key's `tat` is set to one interval from
//! now (the delivery goes); a busy key's is moved on by an atomic `ADD`
//! whose answer is the new state, the slot one interval and the burst
//! before it. Each is conditional on which case it is, so concurrent
//! dispatchers never hand out the same slot; the case this container saw
//! last for the key is tried first.
//!
//! **A place in flight is a lease** ([`Table::enter`]): a consistent read
//! finds one not held (or held past its time — a dispatcher that died
//! holding it), and a write conditional on it still being free takes it.
//! [`Table::leave`] frees it only if it is still the same lease.
//!
//! Idle items expire (`expires_at`) after [`KEPT`], and never before
//! the end of the backlog their state holds.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValue;
use hookflow_core::limit::{self, RateLimit};
use hookflow_core::ports::{Clock, PortError, SystemClock};

use super::{Item, Table, get_n, key, n};
use crate::{Error, keys};

/// How long a limit's item outlives its last use.
const KEPT: i64 = 30 * 86_400;

/// How many times a reservation or a lease is tried against other
/// dispatchers' writes before the job is failed (and tried again by SQS).
const TRIES: usize = 4;

/// A place in flight taken by [`Table::enter`].
#[derive(Debug)]
pub struct Lease {
    key: String,
    place: usize,
    until: i64,
    /// The mean as read when it was taken.
    mean: u64,
}

/// A conditional update's answer: `None` when its condition failed.
fn unless_beaten<O, R: std::fmt::Debug + 'static>(
    out: Result<O, SdkError<UpdateItemError, R>>,
) -> Result<Option<O>, Error> {
    match out {
        Ok(o) => Ok(Some(o)),
        Err(e) if e.as_service_error().is_some_and(UpdateItemError::is_conditional_check_failed_exception) => Ok(None),
        Err(e) => Err(Error::aws("DynamoDB", "UpdateItem", e)),
    }
}

impl Table {
    /// An `UpdateItem` of `key`'s limit item.
    fn update_limit(&self, key_: &str) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.name).set_key(Some(key(keys::limit(key_), keys::LIMIT)))
    }

    /// The slot (wall clock, µs) of one delivery to `key` under `rate` at
    /// `now_us`.
    pub async fn reserve(&self, key: &str, rate: &RateLimit, now_us: i64) -> Result<i64, Error> {
        self.reserve_on(key, "tat", rate, now_us).await
    }

    /// A reservation on `attr`: the pace's `tat`, or the `line`.
    async fn reserve_on(&self, key_: &str, attr: &str, rate: &RateLimit, now_us: i64) -> Result<i64, Error> {
        let seen = format!("{key_}#{attr}");
        let mut try_busy = self.busy.get(&seen).unwrap_or(false);
        for _ in 0..TRIES * 2 {
            if try_busy {
                match self.advance(key_, attr, rate, now_us).await? {
                    Some(tat) => {
                        self.busy.insert(seen, true);
                        let (slot, _) = limit::reserve(Some(tat - rate.interval_us()), now_us, rate);
                        return Ok(slot);
                    }
                    None => try_busy = false,
                }
            } else {
                if self.start(key_, attr, rate, now_us).await? {
                    self.busy.insert(seen, false);
                    return Ok(now_us);
                }
                try_busy = true;
            }
        }
        Err(Error::Conflict(format!("limit {key_}: no slot after {TRIES} tries against other dispatchers")))
    }

    /// An idle key (`attr` absent or past): `attr` set one interval from
    /// now. Whether it was idle.
    async fn start(&self, key_: &str, attr: &str, rate: &RateLimit, now_us: i64) -> Result<bool, Error> {
        let out = self
            .update_limit(key_)
            .update_expression("SET #a = :next, expires_at = :exp")
            .condition_expression("attribute_not_exists(#a) OR #a <= :now")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":next", n(now_us + rate.interval_us()))
            .expression_attribute_values(":now", n(now_us))
            .expression_attribute_values(":exp", n(now_us / 1_000_000 + KEPT))
            .send()
            .await;
        Ok(unless_beaten(out)?.is_some())
    }

    /// A busy key (`attr` ahead of now): moved on by one interval,
    /// atomically; its new value, or `None` if it was idle.
    async fn advance(&self, key_: &str, attr: &str, rate: &RateLimit, now_us: i64) -> Result<Option<i64>, Error> {
        let out = self
            .update_limit(key_)
            .update_expression("ADD #a :t SET expires_at = :exp")
            .condition_expression("#a > :now")
            .expression_attribute_names("#a", attr)
            .expression_attribute_values(":t", n(rate.interval_us()))
            .expression_attribute_values(":now", n(now_us))
            .expression_attribute_values(":exp", n(now_us / 1_000_000 + KEPT))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let Some(o) = unless_beaten(out)? else { return Ok(None) };
        let tat = o.attributes.as_ref().and_then(|a| get_n(a, attr));
        let tat = tat.ok_or_else(|| Error::Malformed(format!("limit {key_}: `{attr}` is not a number")))?;
        // A backlog reaching past half the item's keeping: it is kept past
        // the backlog's end (rare: a second write).
        if tat / 1_000_000 > now_us / 1_000_000 + KEPT / 2 {
            self.keep_until(key_, tat / 1_000_000 + KEPT).await?;
        }
        Ok(Some(tat))
    }

    /// Keeps `key`'s item until `at` (s) at least.
    async fn keep_until(&self, key_: &str, at: i64) -> Result<(), Error> {
        let out = self
            .update_limit(key_)
            .update_expression("SET expires_at = :at")
            .condition_expression("expires_at < :at")
            .expression_attribute_values(":at", n(at))
            .send()
            .await;
        unless_beaten(out).map(|_| ())
    }

    /// One of `max` places in flight to `key`, held until `until_ms`; or,
    /// all held, when to come back (wall clock, ms): in line, as fast as
    /// places have been freeing up.
    pub async fn enter(&self, key_: &str, max: u32, now_ms: i64, until_ms: i64) -> Result<Result<Lease, i64>, Error> {
        let mut mean = 0;
        for _ in 0..TRIES {
            let item = self.get(keys::limit(key_), keys::LIMIT).await?.unwrap_or_default();
            mean = get_n(&item, "mean").unwrap_or(0).max(0) as u64;
            let Some(place) = free_place(&item, max, now_ms) else { break };
            let out = self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(key(keys::limit(key_), keys::LIMIT)))
                .update_expression("SET #p = :until, expires_at = :exp")
                .condition_expression("attribute_not_exists(#p) OR #p <= :now")
                .expression_attribute_names("#p", format!("p{place}"))
                .expression_attribute_values(":until", n(until_ms))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":exp", n(now_ms / 1000 + KEPT))
                .send()
                .await;
            if unless_beaten(out)?.is_some() {
                return Ok(Ok(Lease { key: key_.to_string(), place, until: until_ms, mean }));
            }
        }
        let line = limit::line(max, if mean == 0 { 1000 } else { mean });
        let slot = self.reserve_on(key_, "line", &line, now_ms * 1000).await?;
        Ok(Err((slot + line.interval_us()) / 1000))
    }

    /// Frees `lease` (if it is still the one held) and moves the mean on
    /// by an attempt that took `took_ms`.
    pub async fn leave(&self, lease: Lease, took_ms: u64) -> Result<(), Error> {
        let out = self
            .update_limit(&lease.key)
            .update_expression("REMOVE #p SET mean = :mean")
            .condition_expression("#p = :until")
            .expression_attribute_names("#p", format!("p{}", lease.place))
            .expression_attribute_values(":until", n(lease.until))
            .expression_attribute_values(":mean", n(limit::mean(lease.mean, took_ms) as i64))
            .send()
            .await;
        unless_beaten(out).map(|_| ())
    }

    /// About how many deliveries to `key` wait under `rate`, and how many
    /// places are held, at `now_ms`.
    pub async fn backlog(&self, key_: &str, rate: Option<&RateLimit>, now_ms: i64) -> Result<(u64, u32), Error> {
        let waiting = match rate {
            Some(r) => {
                let paced = self.get(keys::limit(&r.pace_key(key_)), keys::LIMIT).await?.unwrap_or_default();
                limit::waiting(get_n(&paced, "tat"), now_ms * 1000, r)
            }
            None => 0,
        };
        let item = self.get(keys::limit(key_), keys::LIMIT).await?.unwrap_or_default();
        Ok((waiting, held(&item, now_ms).count() as u32))
    }
}

/// The limits as the pipelines' port: one state shared by every function,
/// on the wall clock. A place not freed (the table did not answer) is free
/// again when its time is up.
impl hookflow_pipeline::Limiter for Table {
    type Permit = Lease;

    fn epoch(&self) -> i64 {
        0
    }

    async fn reserve(&self, key: &str, rate: &RateLimit) -> Result<Duration, PortError> {
        let now_us = SystemClock.now_ms() * 1000;
        let slot = Table::reserve(self, key, rate, now_us).await.map_err(port)?;
        Ok(Duration::from_micros((slot - now_us).max(0) as u64))
    }

    async fn enter(&self, key: &str, max: u32, hold: Duration) -> Result<Result<Lease, Duration>, PortError> {
        let now = SystemClock.now_ms();
        let entered = Table::enter(self, key, max, now, now + hold.as_millis() as i64).await.map_err(port)?;
        Ok(entered.map_err(|back_at| Duration::from_millis((back_at - now).max(0) as u64)))
    }

    async fn leave(&self, lease: Lease, took_ms: u64) {
        let _ = Table::leave(self, lease, took_ms).await;
    }
}

fn port(e: Error) -> PortError {
    PortError::transient(e.to_string())
}

/// The places held at `now_ms`.
fn held(item: &Item, now_ms: i64) -> impl Iterator<Item = usize> + '_ {
    item.iter().filter_map(move |(k, v)| {
        let place = k.strip_prefix('p')?.parse::<usize>().ok()?;
        let until: i64 = v.as_n().ok()?.parse().ok()?;
        (until > now_ms).then_some(place)
    })
}

/// A place below `max` not held at `now_ms`, if fewer than `max` are
/// (places above a lowered `max` count until they are let go).
fn free_place(item: &Item, max: u32, now_ms: i64) -> Option<usize> {
    let taken: Vec<usize> = held(item, now_ms).collect();
    if taken.len() >= max as usize {
        return None;
    }
    (0..max as usize).find(|p| !taken.contains(p))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    #[test]
    fn a_place_is_free_when_not_held_or_held_past_its_time_and_a_lowered_max_counts_the_rest() {
        let item: Item = HashMap::from([
            ("p0".to_string(), AttributeValue::N("2000".into())),
            ("p1".to_string(), AttributeValue::N("500".into())),
            ("p5".to_string(), AttributeValue::N("2000".into())),
            ("pk".to_string(), AttributeValue::S("LIMIT#x".into())),
        ]);
        assert_eq!(free_place(&item, 3, 1000), Some(1), "p1's holder died; its place is free");
        assert_eq!(free_place(&item, 2, 1000), None, "p5 (above a lowered max) still counts");
        assert_eq!(free_place(&item, 3, 2000), Some(0), "all past their time");
    }
}
