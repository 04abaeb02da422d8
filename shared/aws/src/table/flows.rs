//! Versioned flows and their trigger routes, read through a per-container cache.

use super::*;

impl Table {
    /// Stores `text` (a flow file, already validated by the caller) as the
    /// flow's next version, makes it current and points its trigger route
    /// at it. Refuses a route another flow of the tenant holds. Returns the
    /// new version.
    pub async fn put_flow(&self, flow: &CompiledFlow, text: &str, now_ms: i64) -> Result<u64, Error> {
        let f = &flow.flow;
        let current = self.get(keys::flow(&f.tenant, &f.id), keys::CURRENT).await?;
        let version = current.as_ref().and_then(|c| get_n(c, "version")).unwrap_or(0) as u64 + 1;
        let old_path = current.as_ref().and_then(|c| get_s(c, "path")).map(String::from);
        let path = f.trigger.path.trim_matches('/').to_string();
        let file = flow.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let body = |sk: String| {
            let mut item = key(keys::flow(&f.tenant, &f.id), sk);
            item.insert("version".into(), n(version as i64));
            item.insert("text".into(), s(text));
            item.insert("file".into(), s(file.clone()));
            item.insert("path".into(), s(path.clone()));
            item.insert("updated_at".into(), n(now_ms));
            item
        };
        let mut writes = vec![
            put(&self.name, body(keys::flow_version(version)), Some("attribute_not_exists(pk)"), &[])?,
            put(
                &self.name,
                body(keys::CURRENT.into()),
                Some(if version == 1 { "attribute_not_exists(pk)" } else { "version = :prev" }),
                &[(":prev", n(version as i64 - 1))],
            )?,
        ];
        // Listed, for the admin API and the console.
        let mut index = key(keys::FLOWS.to_string(), keys::listed_flow(&f.tenant, &f.id));
        index.insert("tenant".into(), s(f.tenant.clone()));
        index.insert("flow_id".into(), s(f.id.clone()));
        writes.push(put(&self.name, index, None, &[])?);
        let listed = key(keys::event_flows(&f.tenant), f.id.clone());
        if f.trigger.kind == hookflow_core::flow::TriggerKind::Event {
            // Found by a publish, not by a route.
            let mut item = listed;
            item.insert("events".into(), s(serde_json::to_string(&f.trigger.events).unwrap_or_default()));
            writes.push(put(&self.name, item, None, &[])?);
        } else {
            let mut route = key(keys::route(&f.tenant, &path), keys::ROUTE);
            route.insert("flow_id".into(), s(f.id.clone()));
            writes.push(put(
                &self.name,
                route,
                Some("attribute_not_exists(pk) OR flow_id = :id"),
                &[(":id", s(f.id.clone()))],
            )?);
            // No longer started by events, if it was.
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.name)
                .set_key(Some(listed))
                .build()
                .map_err(|e| Error::Malformed(e.to_string()))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        if let Some(old) = old_path.filter(|p| *p != path && !p.is_empty()) {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.name)
                .set_key(Some(key(keys::route(&f.tenant, &old), keys::ROUTE)))
                .build()
                .map_err(|e| Error::Malformed(e.to_string()))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.client.transact_write_items().set_transact_items(Some(writes)).send().await.map_err(|e| {
            let cancelled = e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception());
            if cancelled {
                Error::Malformed(format!(
                    "flow `{}` of tenant `{}`: the trigger path `/{path}` belongs to another flow, or the flow changed meanwhile",
                    f.id, f.tenant
                ))
            } else {
                Error::aws("DynamoDB", "TransactWriteItems", e)
            }
        })?;
        self.flows.clear();
        Ok(version)
    }

    /// Every flow (tenant, id) put since flows were listed: one `Query` of
    /// the `FLOWS` partition (a flow deployed before is listed once it is
    /// put again).
    pub async fn flow_ids(&self) -> Result<Vec<(String, String)>, Error> {
        let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::FLOWS))]).await?;
        Ok(items
            .iter()
            .filter_map(|i| Some((get_s(i, "tenant")?.to_string(), get_s(i, "flow_id")?.to_string())))
            .collect())
    }

    /// The tenant's flows with an event trigger (loaded through the flow
    /// cache).
    pub async fn event_flows(&self, tenant: &str) -> Result<Vec<Arc<CompiledFlow>>, Error> {
        let items = self.query_all("pk = :pk", None, &[(":pk", s(keys::event_flows(tenant)))]).await?;
        let mut out = Vec::new();
        for i in &items {
            let Some(id) = get_s(i, "sk") else { continue };
            if let Some(flow) = self.cached_flow(format!("id:{tenant}/{id}"), tenant, Some(id), None).await? {
                out.push(flow);
            }
        }
        Ok(out)
    }

    /// The current text and version of a flow.
    pub async fn flow_text(&self, tenant: &str, flow_id: &str) -> Result<Option<(u64, String, String)>, Error> {
        Ok(self.get(keys::flow(tenant, flow_id), keys::CURRENT).await?.map(|item| {
            (
                get_n(&item, "version").unwrap_or(0) as u64,
                get_s(&item, "file").unwrap_or("flow.yaml").to_string(),
                get_s(&item, "text").unwrap_or_default().to_string(),
            )
        }))
    }

    pub(super) async fn cached_flow(
        &self,
        cache_key: String,
        tenant: &str,
        flow_id: Option<&str>,
        path: Option<&str>,
    ) -> Result<Option<Arc<CompiledFlow>>, Error> {
        if let Some(flow) = self.flows.get(&cache_key) {
            return Ok(flow);
        }
        let flow_id = match (flow_id, path) {
            (Some(id), _) => Some(id.to_string()),
            (None, Some(path)) => self
                .get(keys::route(tenant, path), keys::ROUTE)
                .await?
                .and_then(|r| get_s(&r, "flow_id").map(String::from)),
            (None, None) => None,
        };
        let flow = match flow_id {
            None => None,
            Some(id) => match self.flow_text(tenant, &id).await? {
                None => None,
                Some((version, file, text)) => Some(Arc::new(compile(tenant, &id, version, &file, &text)?)),
            },
        };
        self.flows.put(cache_key, flow.clone());
        Ok(flow)
    }

    /// The version of its flow that `run` started on, to go on with
    /// whatever the flow's current version is (a version's item never
    /// changes, so it is cached like any flow). A run that recorded no
    /// version (written before runs did) goes on with the current one.
    pub async fn flow_of(&self, run: &hookflow_core::run::Run) -> Result<Option<Arc<CompiledFlow>>, Error> {
        let Some(version) = run.flow_version.strip_prefix('v').and_then(|v| v.parse::<u64>().ok()) else {
            return self.by_id(&run.tenant, &run.flow_id).await;
        };
        let (tenant, id) = (&run.tenant, &run.flow_id);
        let cache_key = format!("v:{tenant}/{id}@{version}");
        if let Some(flow) = self.flows.get(&cache_key) {
            return Ok(flow);
        }
        let flow = match self.get(keys::flow(tenant, id), &keys::flow_version(version)).await? {
            None => None,
            Some(item) => {
                let file = get_s(&item, "file").unwrap_or("flow.yaml");
                let text = get_s(&item, "text").unwrap_or_default();
                Some(Arc::new(compile(tenant, id, version, file, text)?))
            }
        };
        self.flows.put(cache_key, flow.clone());
        Ok(flow)
    }

    /// The current flow whose trigger is at `path` of `tenant` (cached).
    pub async fn by_route(&self, tenant: &str, path: &str) -> Result<Option<Arc<CompiledFlow>>, Error> {
        let path = path.trim_matches('/');
        self.cached_flow(format!("route:{tenant}/{path}"), tenant, None, Some(path)).await
    }

    /// The current version of flow `id` of `tenant` (cached).
    pub async fn by_id(&self, tenant: &str, id: &str) -> Result<Option<Arc<CompiledFlow>>, Error> {
        self.cached_flow(format!("id:{tenant}/{id}"), tenant, Some(id), None).await
    }
}

/// A stored flow version, compiled, numbered as the table numbers it.
fn compile(tenant: &str, id: &str, version: u64, file: &str, text: &str) -> Result<CompiledFlow, Error> {
    let name = format!("dynamodb:{tenant}/{id}@v{version}/{file}");
    let mut flow = hookflow_core::load_flow(std::path::Path::new(&name), text)?;
    flow.version = format!("v{version}");
    Ok(flow)
}
