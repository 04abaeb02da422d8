//! The publish pipeline: an event to its tenant's subscriptions and flows,
//! written once for the admin API of both drivers; the dispatcher's
//! `subscription.disabled` (published inside a delivery's commit,
//! [`crate::delivery::commit`]) ends the same way, with [`settle`].
//!
//! 1. **repeat**: an id published inside its idempotency window is not
//!    published again; what its first publish left unsent is sent
//!    ([`PublishPorts::published`]) and the subscriptions it may have
//!    missed are settled (below);
//! 2. **fan out**: the tenant's active subscriptions and event flows as
//!    read now ([`Audience::audience`]) — the event row, a delivery per
//!    matching subscription, a run per flow it starts, as one unit
//!    ([`subscription::publish`]);
//! 3. **write** it ([`PublishPorts::commit`]); a write refused because
//!    another call published the id meanwhile is a repeat (1);
//! 4. **settle** ([`settle`]): read the subscriptions again, consistently,
//!    and queue the event to any that receives it and was not reached in
//!    2 — an enable that came between 2 and 3. Its replay reads events
//!    after writing the enable: if that read came before 3 it missed this
//!    event, but then this read, after 3, sees the enable. Whatever the
//!    timing, one of the two sends it (a subscription reached both ways
//!    gets one `webhook-id`: delivery ids are derived).
//!
//! A failure after 3 answers an error; the caller's retry is a repeat,
//! which settles again.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use hookflow_core::CompiledFlow;
use hookflow_core::commit::{Commit, NewJob};
use hookflow_core::engine::LogLine;
use hookflow_core::ports::{Classify, ErrorKind, PortError};
use hookflow_core::subscription::{self, Event, Published, Settings, Subscription};

/// Who hears of an event, and a way to reach the ones a publish missed.
pub trait Audience: Send + Sync {
    type Error: Classify + From<PortError>;

    /// The time, ms since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Subscriptions' retry schedules and windows.
    fn settings(&self) -> &Settings;

    /// Who hears of an event of `tenant`: its subscriptions (of any status:
    /// the publish picks the ones active when the event was stamped) and
    /// the flows an event can start (a read that may lag the latest
    /// writes).
    #[allow(clippy::type_complexity)]
    fn audience(
        &self,
        tenant: &str,
    ) -> impl Future<Output = Result<(Vec<Arc<Subscription>>, Vec<Arc<CompiledFlow>>), Self::Error>> + Send;

    /// `tenant`'s active subscriptions, read so that every subscription
    /// write finished before the read is seen (a consistent read).
    fn subscribers(&self, tenant: &str) -> impl Future<Output = Result<Vec<Arc<Subscription>>, Self::Error>> + Send;

    /// Queues `jobs` durably (deliveries a publish's first read missed).
    fn queue(&self, jobs: Vec<NewJob>) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// An event id published already, inside its idempotency window.
#[derive(Debug, Clone, PartialEq)]
pub enum Repeat {
    /// The event as first published (what a repeat settles with).
    Of(Event),
    /// Published by a version that did not keep what settling needs.
    Unknown,
}

/// What the publish pipeline needs besides its [`Audience`].
pub trait PublishPorts: Audience {
    /// Whether event `event.id` of its tenant is inside its idempotency
    /// window, after sending again what its first publish left unsent (a
    /// driver whose write and queue are one transaction has nothing to
    /// send).
    fn published(&self, event: &Event) -> impl Future<Output = Result<Option<Repeat>, Self::Error>> + Send;

    /// Writes a publish's commit and queues its jobs; a live event of the
    /// same id refuses the whole of it ([`ErrorKind::Duplicate`]).
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Writes operational log lines.
    fn lines(&self, lines: Vec<LogLine>);
}

/// Publishes `event` (see the module's steps). `None`: its id was
/// published already, inside its window.
pub async fn publish<P: PublishPorts>(p: &P, event: &Event) -> Result<Option<Published>, P::Error> {
    if let Some(repeat) = p.published(event).await? {
        settle_repeat(p, repeat).await?;
        return Ok(None);
    }
    let (subs, flows) = p.audience(&event.tenant).await?;
    let publication = subscription::publish(
        event,
        subs.iter().map(AsRef::as_ref),
        flows.iter().map(AsRef::as_ref),
        p.settings(),
        event.at,
    );
    match p.commit(publication.outcome.commit).await {
        Ok(()) => {}
        // Published meanwhile by another call, which may have died before
        // its send.
        Err(e) if e.kind() == ErrorKind::Duplicate => {
            if let Some(repeat) = p.published(event).await? {
                settle_repeat(p, repeat).await?;
            }
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    p.lines(publication.outcome.lines);
    settle(p, event, Some(&publication.reached)).await?;
    Ok(Some(Published { deliveries: publication.deliveries, filtered: publication.filtered, runs: publication.runs }))
}

/// A repeat settles as its first publish would have, over the event as
/// first published (the repeat's own body may differ).
async fn settle_repeat<P: PublishPorts>(p: &P, repeat: Repeat) -> Result<(), P::Error> {
    match repeat {
        Repeat::Of(first) => settle(p, &first, None).await.map(|_| ()),
        Repeat::Unknown => Ok(()),
    }
}

/// After `event` was written: queues it to the subscriptions that receive
/// it and were not `reached` by its publish (`None`: unknown, a repeat;
/// see [`subscription::missed`]). Returns how many.
pub async fn settle<A: Audience>(p: &A, event: &Event, reached: Option<&HashSet<String>>) -> Result<usize, A::Error> {
    let subs = p.subscribers(&event.tenant).await?;
    let jobs = subscription::missed(event, subs.iter().map(AsRef::as_ref), reached, p.settings(), p.now_ms());
    let n = jobs.len();
    if n > 0 {
        p.queue(jobs).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    //! The publish pipeline on ports held in memory, with an enable
    //! landing between its read and its write.

    use std::sync::Mutex;

    use hookflow_core::subscription::{NewSubscription, Status};
    use serde_json::json;

    use super::*;
    use crate::testing::Fault;

    const NOW: i64 = 1_800_000_000_000;

    #[derive(Default)]
    struct Fake {
        settings: Settings,
        subs: Mutex<Vec<Arc<Subscription>>>,
        /// Event ids written, with their time.
        events: Mutex<Vec<Event>>,
        /// Jobs queued: by the commit, then by settling.
        queued: Mutex<Vec<NewJob>>,
        /// A subscription an admin enables between the first read and the
        /// write.
        enabled_meanwhile: Mutex<Option<String>>,
        fail_queue: Mutex<bool>,
    }

    impl Audience for Fake {
        type Error = Fault;

        fn now_ms(&self) -> i64 {
            NOW + 10
        }

        fn settings(&self) -> &Settings {
            &self.settings
        }

        async fn audience(&self, _tenant: &str) -> Result<(Vec<Arc<Subscription>>, Vec<Arc<CompiledFlow>>), Fault> {
            let subs = self.subs.lock().unwrap().clone();
            if let Some(id) = self.enabled_meanwhile.lock().unwrap().take() {
                enable(self, &id);
            }
            Ok((subs, Vec::new()))
        }

        async fn subscribers(&self, _tenant: &str) -> Result<Vec<Arc<Subscription>>, Fault> {
            Ok(self.subs.lock().unwrap().iter().filter(|s| s.status == Status::Active).cloned().collect())
        }

        async fn queue(&self, jobs: Vec<NewJob>) -> Result<(), Fault> {
            if std::mem::take(&mut *self.fail_queue.lock().unwrap()) {
                return Err(Fault(ErrorKind::Unavailable));
            }
            self.queued.lock().unwrap().extend(jobs);
            Ok(())
        }
    }

    impl PublishPorts for Fake {
        async fn published(&self, event: &Event) -> Result<Option<Repeat>, Fault> {
            Ok(self.events.lock().unwrap().iter().find(|e| e.id == event.id).cloned().map(Repeat::Of))
        }

        async fn commit(&self, commit: Commit) -> Result<(), Fault> {
            let row = commit.event.expect("a publish writes its event");
            let mut events = self.events.lock().unwrap();
            if events.iter().any(|e| e.id == row.id) {
                return Err(Fault(ErrorKind::Duplicate));
            }
            events.push(serde_json::from_str(&row.doc).unwrap());
            self.queued.lock().unwrap().extend(commit.jobs);
            Ok(())
        }

        fn lines(&self, _lines: Vec<LogLine>) {}
    }

    fn sub(id: &str, status: Status, updated_at: i64) -> Arc<Subscription> {
        let new = NewSubscription {
            url: "https://receiver.example/hook".into(),
            event_types: vec!["order.*".into()],
            ..Default::default()
        };
        let (mut s, _) = new.create(NOW - 60_000).unwrap();
        s.id = id.into();
        s.status = status;
        s.updated_at = updated_at;
        Arc::new(s)
    }

    fn event(id: &str) -> Event {
        Event { id: id.into(), tenant: "default".into(), kind: "order.paid".into(), at: NOW, data: json!({"n": 1}) }
    }

    /// Enables `id` (the enable of an admin, written between the publish's
    /// read and its write).
    fn enable(fake: &Fake, id: &str) {
        let mut subs = fake.subs.lock().unwrap();
        let s = subs.iter_mut().find(|s| s.id == id).unwrap();
        *s = Arc::new(s.enabled(NOW + 5, None));
    }

    fn deliveries_to(fake: &Fake, sub: &str) -> Vec<String> {
        fake.queued
            .lock()
            .unwrap()
            .iter()
            .filter(|j| j.payload.as_delivery().is_some_and(|d| d.delivery.purpose.subscription() == Some(sub)))
            .map(|j| j.id.clone())
            .collect()
    }

    #[tokio::test]
    async fn a_subscription_enabled_between_the_read_and_the_write_gets_the_event() {
        let fake = Fake::default();
        fake.subs
            .lock()
            .unwrap()
            .extend([sub("sub_a", Status::Active, NOW - 60_000), sub("sub_b", Status::Disabled, NOW - 60_000)]);
        *fake.enabled_meanwhile.lock().unwrap() = Some("sub_b".into());
        let published = publish(&fake, &event("evt_1")).await.unwrap().unwrap();
        assert_eq!(published.deliveries, 1, "the first read saw one active subscription");
        assert_eq!(deliveries_to(&fake, "sub_a").len(), 1, "the one reached is not queued twice");
        assert_eq!(deliveries_to(&fake, "sub_b").len(), 1, "the one enabled meanwhile is reached by settling");
    }

    #[tokio::test]
    async fn a_publish_with_no_change_meanwhile_queues_nothing_more() {
        let fake = Fake::default();
        fake.subs
            .lock()
            .unwrap()
            .extend([sub("sub_a", Status::Active, NOW - 60_000), sub("sub_b", Status::Disabled, NOW - 60_000)]);
        publish(&fake, &event("evt_1")).await.unwrap().unwrap();
        assert_eq!(fake.queued.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_event_stamped_before_a_disable_it_read_after_is_queued_for_the_disabled_subscription() {
        // Disabled 1 ms after the event was stamped, before its publish
        // read the subscriptions: the delivery is queued (dead at its gate,
        // replayable), as the ones queued before the disable are.
        let fake = Fake::default();
        let mut late = (*sub("sub_a", Status::Active, NOW - 60_000)).clone();
        late = late.disabled_by_admin(NOW + 1);
        let mut before = (*sub("sub_b", Status::Active, NOW - 60_000)).clone();
        before = before.disabled_by_admin(NOW - 1);
        fake.subs.lock().unwrap().extend([Arc::new(late), Arc::new(before)]);
        let published = publish(&fake, &event("evt_1")).await.unwrap().unwrap();
        assert_eq!(published.deliveries, 1);
        assert_eq!(deliveries_to(&fake, "sub_a").len(), 1, "active when the event was stamped");
        assert!(deliveries_to(&fake, "sub_b").is_empty(), "disabled before it");
    }

    #[tokio::test]
    async fn a_failed_settle_is_finished_by_the_callers_repeat() {
        let fake = Fake::default();
        fake.subs
            .lock()
            .unwrap()
            .extend([sub("sub_a", Status::Active, NOW - 60_000), sub("sub_b", Status::Disabled, NOW - 60_000)]);
        *fake.enabled_meanwhile.lock().unwrap() = Some("sub_b".into());
        *fake.fail_queue.lock().unwrap() = true;
        assert!(publish(&fake, &event("evt_1")).await.is_err(), "the settle's queue failed: an error, retried");
        assert!(deliveries_to(&fake, "sub_b").is_empty());
        // The caller's retry: the id is live, its repeat settles what the
        // first call could not (the subscription changed since the event).
        let mut retry = event("evt_1");
        retry.at = NOW + 30_000;
        assert_eq!(publish(&fake, &retry).await.unwrap(), None, "a repeat publishes nothing new");
        let ids = deliveries_to(&fake, "sub_b");
        assert_eq!(ids.len(), 1, "the enabled subscription gets it on the repeat");
        assert_eq!(deliveries_to(&fake, "sub_a").len(), 1, "one unchanged since is not sent again");
    }
}
