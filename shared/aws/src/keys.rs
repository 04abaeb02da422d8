//! Every key shape of the one DynamoDB table (`pk`, `sk`, both strings).
//!
//! | item | `pk` | `sk` | read by |
//! |---|---|---|---|
//! | flow version | `FLOW#{tenant}#{flow_id}` | `V#{version:08}` | `hookflow apply --dry-run` (diff), history |
//! | current flow | `FLOW#{tenant}#{flow_id}` | `CURRENT` | a run going on (`by_id`) |
//! | a flow, listed (written with each version) | `FLOWS` | `{tenant}#{flow_id}` | listing flows (admin API, console: one `Query`) |
//! | trigger route | `ROUTE#{tenant}#{path}` | `ROUTE` | every inbound request: one `GetItem`, no index |
//! | flow started by events | `EVENTFLOWS#{tenant}` | `{flow_id}` | a publish (one `Query`) |
//! | run (its state, its last commit's outbox and, up to 64 KiB, its log entries: one compressed `doc`) | `RUN#{run_id}` | `RUN` | the executor, `hookflow runs show` |
//! | a run's log entry not kept in the run's item (an attempt, or past the bound) | `RUN#{run_id}` | `LOG#{at:013}#{n:03}#{unique}` | `hookflow runs show` (one `Query` of the partition) |
//! | inbound log entry (every request: rejected, duplicate, or the copy of a run's `inbound` entry) | `LOG#{tenant}#{hour}` | `{at:013}#{n:03}#{unique}` | `hookflow logs --table`: a tenant's requests by hour, then each run's timeline |
//! | a log entry without a run that names an event (a rejected or duplicate request, a publish), by that event | `EVLOG#{tenant}#{event_id}` | as under its tenant and hour | `GET /v1/logs?event_id=` (one `Query`, then the event's runs: `run_{id}` of a request's `evt_{id}`, the event's deliveries under `RUN#{event_id}`, the runs its publish started) |
//! | idempotency key | `IDEM#{scope}` | `IDEM` | the ingress (conditional put) |
//! | dead delivery (what it was, why, when: no job, so a list stays small) | `DEAD` | `{tenant}#{delivery_id}` | `hookflow dead list/replay` (one `Query`; dead deliveries are rare, one partition holds them) |
//! | a dead delivery's job (compressed, in parts of at most 300 KB) | `DEADJOB#{tenant}#{delivery_id}` | `P#{n:03}` | a replay (one `Query`) |
//! | a dead delivery, listed by time (the row's copy) | `DEADAT` | `{at:013}#{delivery_id}#{tenant}` | `GET /v1/dead`: one `Query` a page, from its cursor |
//! | a dead delivery's tenant | `DEADID#{delivery_id}` | `DEADID` | a replay by id alone (`GetItem`) |
//! | dead rows of an earlier version copied to `DEADAT` | `DEADMIGRATED` | `DEADMIGRATED` | the first dead read of a container |
//! | subscription | `SUBS#{tenant}` | `{subscription_id}` | a publish (one `Query` of its tenant's partition, not cached), a subscription delivery (`GetItem`) |
//! | a subscription's tenant (written with it, never changed) | `SUBREF#{subscription_id}` | `SUBREF` | a read by id (cached per container: it never changes) |
//! | a tenant that has had subscriptions | `SUBTENANTS` | `{tenant}` | listing every tenant's subscriptions (admin) |
//! | subscription, as written before partitions per tenant (read and written there) | `SUBS` | `{subscription_id}` | [`crate::table::Table::subscriptions`] while it holds any, a read by id without a reference |
//! | published event (its id's idempotency window) | `EVENT#{tenant}#{event_id}` | `EVENT` | a publish (conditional put) |
//! | published event, by time | `EVENTS#{tenant}#{hour}` | `{at:013}#{event_id}` | listing events, replay to a re-enabled subscription |
//! | an ordered delivery between attempts (attempts made, first due, next due) | `HELD#{job_id}` | `HELD` | the dispatcher, per message of the ordered queue (`GetItem`) |
//! | an hour that holds a tenant's log entries or events (written once per container and hour) | `HOURS#LOG#{tenant}`, `HOURS#EVENTS#{tenant}` | `{hour:010}` | every read by hour: one `Query` finds the hours to read ([`crate::table::Table::hours`]) |
//! | an hour that holds a flow's requests (the same) | `HOURS#FLOW#{tenant}#{flow_id}` | `{hour:010}` | a read of one flow's requests |
//! | the hour from which every hourly write is in the index | `HOURS` | `SINCE` | readers of hours before it (written by an earlier version) |
//!
//! Items that expire carry `expires_at` (Unix seconds), the table's TTL
//! attribute. TTL deletion lags by up to days, so reads filter on it too.

/// The flow's partition.
pub fn flow(tenant: &str, flow_id: &str) -> String {
    format!("FLOW#{tenant}#{flow_id}")
}

/// A flow version's sort key (zero-padded so versions sort).
pub fn flow_version(version: u64) -> String {
    format!("V#{version:08}")
}

pub const CURRENT: &str = "CURRENT";

/// The partition listing every flow (`{tenant}#{flow_id}`).
pub const FLOWS: &str = "FLOWS";

/// A flow's sort key in [`FLOWS`].
pub fn listed_flow(tenant: &str, flow_id: &str) -> String {
    format!("{tenant}#{flow_id}")
}

/// A trigger route's partition. The path is stored without surrounding
/// slashes, as the routes are looked up.
pub fn route(tenant: &str, path: &str) -> String {
    format!("ROUTE#{tenant}#{}", path.trim_matches('/'))
}

pub const ROUTE: &str = "ROUTE";

/// The partition listing a tenant's flows with an event trigger.
pub fn event_flows(tenant: &str) -> String {
    format!("EVENTFLOWS#{tenant}")
}

pub fn run(run_id: &str) -> String {
    format!("RUN#{run_id}")
}

pub const RUN: &str = "RUN";

/// A log entry's sort key under its run: time-ordered, unique.
pub fn run_log(at: i64, n: usize, unique: &str) -> String {
    format!("LOG#{at:013}#{n:03}#{unique}")
}

/// The partition of log entries that have no run, per tenant and hour.
pub fn tenant_log(tenant: &str, at: i64) -> String {
    Hourly::Log.partition(tenant, at.div_euclid(3_600_000))
}

/// The partition of the run-less log entries that name `event_id`.
pub fn event_log(tenant: &str, event_id: &str) -> String {
    format!("EVLOG#{tenant}#{event_id}")
}

/// The run a trigger request's event id names (`evt_{id}` → `run_{id}`).
pub fn run_of_event(event_id: &str) -> Option<String> {
    event_id.strip_prefix("evt_").map(|id| format!("run_{id}"))
}

pub fn tenant_log_sort(at: i64, n: usize, unique: &str) -> String {
    format!("{at:013}#{n:03}#{unique}")
}

pub fn idempotency(scope: &str) -> String {
    format!("IDEM#{scope}")
}

pub const IDEM: &str = "IDEM";

pub const DEAD: &str = "DEAD";

pub fn dead(tenant: &str, delivery_id: &str) -> String {
    format!("{tenant}#{delivery_id}")
}

/// The partition of dead deliveries by time.
pub const DEAD_AT: &str = "DEADAT";

/// A dead delivery's sort key in [`DEAD_AT`]: by time, then id (`#` sorts
/// before every character of an id).
pub fn dead_listed(at: i64, tenant: &str, delivery_id: &str) -> String {
    format!("{at:013}#{delivery_id}#{tenant}")
}

/// Where a dead delivery's tenant is found by its id.
pub fn dead_ref(delivery_id: &str) -> String {
    format!("DEADID#{delivery_id}")
}

pub const DEAD_REF: &str = "DEADID";

/// Whether the rows an earlier version wrote to [`DEAD`] are listed in
/// [`DEAD_AT`].
pub const DEAD_MIGRATED: &str = "DEADMIGRATED";

/// The partition of a dead delivery's job.
pub fn dead_job(tenant: &str, delivery_id: &str) -> String {
    format!("DEADJOB#{tenant}#{delivery_id}")
}

/// A part of a dead delivery's job, in order.
pub fn dead_part(n: usize) -> String {
    format!("P#{n:03}")
}

/// A tenant's subscriptions.
pub fn subs(tenant: &str) -> String {
    format!("SUBS#{tenant}")
}

/// Where a subscription's tenant is found by its id.
pub fn sub_ref(id: &str) -> String {
    format!("SUBREF#{id}")
}

pub const SUBREF: &str = "SUBREF";

/// The partition listing the tenants that have had subscriptions.
pub const SUB_TENANTS: &str = "SUBTENANTS";

/// The one partition of every subscription, before partitions per tenant.
pub const LEGACY_SUBS: &str = "SUBS";

/// A destination's limits' state ([`crate::table`]'s `limits`): a
/// subscription's by its id.
pub fn limit(key: &str) -> String {
    format!("LIMIT#{key}")
}

pub const LIMIT: &str = "LIMIT";

pub fn event(tenant: &str, event_id: &str) -> String {
    format!("EVENT#{tenant}#{event_id}")
}

pub const EVENT: &str = "EVENT";

/// The partition of a tenant's events published in `at`'s hour.
pub fn events(tenant: &str, at: i64) -> String {
    Hourly::Events.partition(tenant, at.div_euclid(3_600_000))
}

pub fn events_sort(at: i64, event_id: &str) -> String {
    format!("{at:013}#{event_id}")
}

/// The data kept by hour, each under `{KIND}#{tenant}#{hour}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hourly {
    /// The request log ([`tenant_log`]).
    Log,
    /// Published events ([`events`]).
    Events,
}

impl Hourly {
    fn prefix(self) -> &'static str {
        match self {
            Hourly::Log => "LOG",
            Hourly::Events => "EVENTS",
        }
    }

    /// The partition of `tenant`'s items of `hour`.
    pub fn partition(self, tenant: &str, hour: i64) -> String {
        format!("{}#{tenant}#{hour}", self.prefix())
    }

    /// The partition listing the hours that hold `tenant`'s items.
    pub fn index(self, tenant: &str) -> String {
        format!("HOURS#{}#{tenant}", self.prefix())
    }

    /// The partition listing the hours that hold `flow_id`'s requests
    /// ([`Hourly::Log`] only).
    pub fn flow_index(tenant: &str, flow_id: &str) -> String {
        format!("HOURS#FLOW#{tenant}#{flow_id}")
    }

    /// The index entry of an hourly partition (`None`: not one), as
    /// (index partition, hour).
    pub fn index_of(pk: &str) -> Option<(String, i64)> {
        let (kind, rest) = pk.split_once('#')?;
        let kind = [Hourly::Log, Hourly::Events].into_iter().find(|k| k.prefix() == kind)?;
        let (tenant, hour) = rest.rsplit_once('#')?;
        let hour = hour.parse().ok().filter(|_| !hour.starts_with(['+', '-']))?;
        Some((kind.index(tenant), hour))
    }
}

/// An hour's sort key in an index (zero-padded so hours sort).
pub fn hour_sort(hour: i64) -> String {
    format!("{hour:010}")
}

/// The partition and sort key of the hour from which every hourly write
/// is indexed.
pub const HOURS: &str = "HOURS";
pub const SINCE: &str = "SINCE";

/// The held state of an ordered message (its job id).
pub fn held(job_id: &str) -> String {
    format!("HELD#{job_id}")
}

pub const HELD: &str = "HELD";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_sort_by_time_and_version() {
        assert!(flow_version(9) < flow_version(10));
        assert!(run_log(999, 0, "z") < run_log(1000, 0, "a"));
        assert!(run_log(1000, 2, "a") < run_log(1000, 10, "a"));
        assert_eq!(route("acme", "/partner/in/"), "ROUTE#acme#partner/in");
        assert!(hour_sort(99) < hour_sort(100));
    }

    #[test]
    fn an_hourly_partition_names_its_index_and_no_other_key_does() {
        let at = 7_200_000 * 3 + 5;
        assert_eq!(Hourly::index_of(&tenant_log("acme", at)), Some(("HOURS#LOG#acme".into(), 6)));
        assert_eq!(Hourly::index_of(&events("a#b", at)), Some(("HOURS#EVENTS#a#b".into(), 6)));
        assert_eq!(tenant_log("t", at), Hourly::Log.partition("t", 6));
        assert_ne!(Hourly::flow_index("a", "b"), Hourly::Log.index("a#b"), "a flow's index is no tenant's");
        for other in [run("r1"), dead_job("t", "d"), DEAD.into(), event("t", "e"), "LOG#t#-1".into(), "LOG#t".into()] {
            assert_eq!(Hourly::index_of(&other), None, "{other}");
        }
    }
}
