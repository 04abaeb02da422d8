//! A deployed stack's names: what its functions read (`HOOKFLOW_*`),
//! from its CloudFormation outputs and parameters (template.yaml's names),
//! for `hookflow console --stack` and `hookflow stack-env`.

use std::process::ExitCode;

use anyhow::{Context, Result};

/// A stack's names.
pub struct Stack {
    /// The variables the functions get (`HOOKFLOW_TABLE`, the queue URLs,
    /// the secrets prefix, the log retention).
    pub vars: Vec<(String, String)>,
    /// Output `ApiUrl`: where the triggers are.
    pub api_url: Option<String>,
    /// Output `AdminUrl`: the admin API (IAM).
    pub admin_url: Option<String>,
}

/// Reads stack `stack`'s outputs and parameters.
pub async fn names(sdk: &aws_config::SdkConfig, stack: &str) -> Result<Stack> {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let found = cfn
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(aws_sdk_cloudformation::Error::from)
        .with_context(|| {
            format!("reading stack `{stack}` (is the name right, in this region, with these credentials?)")
        })?;
    let s = found.stacks().first().with_context(|| format!("no stack `{stack}`"))?;
    let output = |key: &str| {
        s.outputs().iter().find(|o| o.output_key() == Some(key)).and_then(|o| o.output_value()).map(str::to_string)
    };
    let parameter = |key: &str| {
        s.parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(key))
            .and_then(|p| p.resolved_value().or(p.parameter_value()))
            .map(str::to_string)
    };
    let mut vars = Vec::new();
    for (var, value) in [
        ("HOOKFLOW_TABLE", output("TableName")),
        ("HOOKFLOW_RUNS_QUEUE_URL", output("RunsQueueUrl")),
        ("HOOKFLOW_DELIVERIES_QUEUE_URL", output("DeliveriesQueueUrl")),
        ("HOOKFLOW_ORDERED_QUEUE_URL", output("OrderedDeliveriesQueueUrl")),
        ("HOOKFLOW_SECRETS_PREFIX", parameter("SecretsPrefix")),
        ("HOOKFLOW_LOG_RETENTION_DAYS", parameter("LogRetentionDays")),
    ] {
        match value {
            Some(v) => vars.push((var.to_string(), v)),
            None if var == "HOOKFLOW_TABLE" || var.ends_with("QUEUE_URL") && var != "HOOKFLOW_ORDERED_QUEUE_URL" => {
                anyhow::bail!("stack `{stack}` has no output for {var}: is it a Hookflow stack (template.yaml)?")
            }
            None => {}
        }
    }
    Ok(Stack { vars, api_url: output("ApiUrl"), admin_url: output("AdminUrl") })
}

/// `'…'` for a POSIX shell.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `hookflow stack-env`: `export NAME='value'` lines for `eval`, the
/// variables the CLI reads (and the functions get) plus `HOOKFLOW_API_URL`
/// and `HOOKFLOW_ADMIN_URL`.
pub fn env(stack: &str, region: Option<String>) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async move {
        let sdk = crate::aws::sdk_in(region).await;
        let found = names(&sdk, stack).await?;
        let urls = [("HOOKFLOW_API_URL", found.api_url), ("HOOKFLOW_ADMIN_URL", found.admin_url)];
        let urls = urls.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v)));
        for (name, value) in found.vars.into_iter().chain(urls) {
            out!("export {name}={}", quoted(&value));
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_quoted_for_a_shell() {
        assert_eq!(super::quoted("https://x/a b"), "'https://x/a b'");
        assert_eq!(super::quoted("it's"), r"'it'\''s'");
    }
}
