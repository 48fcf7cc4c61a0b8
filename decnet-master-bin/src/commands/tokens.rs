//! `decnet tokens create | list | revoke`: operator API tokens, through the master
//! (PRODUCT §7, `/api/v1/tokens`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use decnet_core::model::wire::{TokenCreated, TokenRequest, TokenView};
use decnet_core::model::{FieldError, Role};
use uuid::Uuid;

use crate::cli::{ClientArgs, ClientListArgs, TokensCommand, TokensCreateArgs, TokensRevokeArgs};
use crate::client::{answer, format_at, print_json, render_table, MasterClient};
use crate::error::CliError;

const TOKENS: &str = "/api/v1/tokens";

/// The answer to `POST /api/v1/tokens`.
pub type CreatedToken = TokenCreated;

/// One row of `GET /api/v1/tokens` (no secrets).
pub type TokenRow = TokenView;

pub async fn run(
    data_dir: &Path,
    cmd: &TokensCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        TokensCommand::Create(a) => create(data_dir, a, out).await,
        TokensCommand::List(a) => list(data_dir, a, out).await,
        TokensCommand::Revoke(a) => revoke(data_dir, a, out).await,
    }
}

fn connect(data_dir: &Path, c: &ClientArgs) -> Result<MasterClient, CliError> {
    MasterClient::discover(data_dir, c.master.clone(), c.token.clone(), c.ca.clone())
}

/// `ID`: a token id is a UUID.
pub fn check_id(id: &str) -> Result<Uuid, CliError> {
    id.trim().parse().map_err(|_| {
        CliError::from(FieldError::new(
            "ID",
            id,
            "is not a token id (a UUID, see `decnet tokens list`)",
        ))
    })
}

async fn create(
    data_dir: &Path,
    a: &TokensCreateArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let role = Role::from(a.role);
    let client = connect(data_dir, &a.client)?;
    let body = client.post(TOKENS, &TokenRequest { role }).await?;
    if a.json {
        return print_json(&body, out);
    }
    let t: CreatedToken = answer(body, "POST /api/v1/tokens")?;
    write!(out, "{}", render_created(&t)).context("write")?;
    Ok(())
}

/// The human form of a created token: the secret on a line of its own (easy to copy).
pub fn render_created(t: &CreatedToken) -> String {
    format!(
        "created {} token {}\n{}\n(shown only once: the master keeps only its hash)\n",
        t.role, t.id, t.token
    )
}

async fn list(data_dir: &Path, a: &ClientListArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let client = connect(data_dir, &a.client)?;
    let body = client.get(TOKENS).await?;
    if a.json {
        return print_json(&body, out);
    }
    let rows: Vec<TokenRow> = answer(body, "GET /api/v1/tokens")?;
    write!(out, "{}", render_tokens(&rows)).context("write")?;
    Ok(())
}

/// The tokens table (ID, ROLE, CREATED).
pub fn render_tokens(rows: &[TokenRow]) -> String {
    if rows.is_empty() {
        return "no API tokens\n".to_string();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.role.to_string(),
                format_at(Some(t.created_at)),
            ]
        })
        .collect();
    render_table(&["ID", "ROLE", "CREATED"], &cells)
}

async fn revoke(
    data_dir: &Path,
    a: &TokensRevokeArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let id = check_id(&a.id)?;
    let client = connect(data_dir, &a.client)?;
    client.delete(&format!("{TOKENS}/{id}")).await?;
    if a.json {
        return crate::client::print_json(&serde_json::json!({"id": id, "revoked": true}), out);
    }
    writeln!(out, "revoked token {id}").context("write")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_uuids() {
        let id = "3f2c8a4e-0b7e-4a39-9d1e-2f9b7c1a0e55";
        assert_eq!(check_id(id).unwrap().to_string(), id);
        let e = check_id("abc").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().starts_with("ID: \"abc\""), "{e}");
    }

    #[test]
    fn outputs() {
        let t = CreatedToken {
            id: "00000000-0000-0000-0000-000000000001".parse().unwrap(),
            token: "dnt_secret".into(),
            role: Role::Viewer,
        };
        assert_eq!(
            render_created(&t),
            "created viewer token 00000000-0000-0000-0000-000000000001\ndnt_secret\n\
             (shown only once: the master keeps only its hash)\n"
        );
        let rows: Vec<TokenRow> = serde_json::from_value(json!([
            {"id": "00000000-0000-0000-0000-000000000001", "role": "admin",
             "created_at": "2030-01-01T00:00:00Z"},
            {"id": "00000000-0000-0000-0000-000000000002", "role": "viewer",
             "created_at": "2030-01-02T10:00:00+00:00"}
        ]))
        .unwrap();
        assert_eq!(
            render_tokens(&rows),
            "ID                                    ROLE    CREATED\n\
             00000000-0000-0000-0000-000000000001  admin   2030-01-01 00:00:00 UTC\n\
             00000000-0000-0000-0000-000000000002  viewer  2030-01-02 10:00:00 UTC\n"
        );
        assert_eq!(render_tokens(&[]), "no API tokens\n");
    }
}
