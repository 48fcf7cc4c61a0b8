//! [`ServiceLogs`] over the Docker Engine API: the service containers of this host (by labels)
//! and their output with the daemon's timestamps (`GET /containers/{id}/logs?timestamps=1`).

use bollard::errors::Error as BollardError;
use bollard::query_parameters::LogsOptions;
use chrono::{DateTime, Utc};
use decnet_core::orchestrate::collect::{LogLine, ServiceContainer};
use decnet_core::plan::Role;
use decnet_core::traits::{DeployerError, ServiceLogs};
use futures_util::StreamExt;

use crate::{DockerDeployer, DockerError};

/// Splits one line of `docker logs --timestamps` output: `<RFC 3339 nanos> <text>`.
pub fn split_timestamp(line: &str) -> Option<LogLine> {
    let (ts, text) = line.split_once(' ')?;
    let ts = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    Some(LogLine {
        ts,
        text: text.to_owned(),
    })
}

/// Lines of `raw` output, each split with [`split_timestamp`]; unparsable lines are skipped.
pub fn parse_output(raw: &str) -> Vec<LogLine> {
    raw.lines()
        .filter(|l| !l.is_empty())
        .filter_map(split_timestamp)
        .collect()
}

fn gone(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[async_trait::async_trait]
impl ServiceLogs for DockerDeployer {
    async fn service_containers(&self) -> Result<Vec<ServiceContainer>, DeployerError> {
        let found = self.list_observed_for_logs().await?;
        Ok(found
            .into_iter()
            .filter_map(|o| match o.role {
                Role::Service(service) => Some(ServiceContainer {
                    id: o.id,
                    decky: o.decky.to_string(),
                    service,
                }),
                Role::Base => None,
            })
            .collect())
    }

    async fn read_since(
        &self,
        container: &ServiceContainer,
        since_secs: i64,
    ) -> Result<Vec<LogLine>, DeployerError> {
        let opts = LogsOptions {
            stdout: true,
            stderr: false,
            timestamps: true,
            since: i32::try_from(since_secs.max(0)).unwrap_or(i32::MAX),
            ..Default::default()
        };
        let mut raw = String::new();
        let mut stream = self.docker().logs(&container.id, Some(opts));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(out) => raw.push_str(&String::from_utf8_lossy(&out.into_bytes())),
                Err(e) if gone(&e) => return Ok(Vec::new()),
                Err(source) => {
                    return Err(DockerError::Api {
                        what: format!("read the output of container {}", container.id),
                        source,
                    }
                    .into())
                }
            }
        }
        Ok(parse_output(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamped_lines_split() {
        let raw = "2026-12-03T06:00:00.123456789Z {\"v\":1}\n\
                   not-a-time text\n\
                   \n\
                   2026-12-03T06:00:01.5Z second line with  spaces\n";
        let lines = parse_output(raw);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "{\"v\":1}");
        assert_eq!(lines[0].ts.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(lines[1].text, "second line with  spaces");
        assert_eq!(lines[1].ts.timestamp(), lines[0].ts.timestamp() + 1);
    }
}
