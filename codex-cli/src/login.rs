//! `codex login [--with-api-key | --device-auth]`, `codex login status`,
//! `codex logout`: upstream's commands and messages (on stderr), over the
//! same credential store and broker logic the daemon uses.

use std::io::{IsTerminal, Read};

use clap::{Args, Subcommand};
use codex_core::auth::broker::account_of;
use codex_core::auth::login::{self, mask_key};
use codex_core::auth::refresh::AuthEndpoints;
use codex_core::auth::LocalBroker;
use codex_core::config::{Config, LoadOptions};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(subcommand)]
    command: Option<LoginCommand>,
    /// Read an API key from stdin and save it.
    #[arg(long)]
    with_api_key: bool,
    /// Sign in with a one-time code on another device (no local browser).
    #[arg(long)]
    device_auth: bool,
    /// The OAuth issuer (default https://auth.openai.com).
    #[arg(long = "experimental_issuer", hide = true)]
    issuer: Option<String>,
    /// The OAuth client id.
    #[arg(long = "experimental_client-id", hide = true)]
    client_id: Option<String>,
}

#[derive(Subcommand, Debug)]
enum LoginCommand {
    /// Show whether and how you are signed in.
    Status,
}

pub(crate) fn open_broker() -> Result<LocalBroker, String> {
    let config = Config::load(LoadOptions::default())
        .map_err(|e| format!("Error loading configuration: {e}"))?;
    let (broker, note) = LocalBroker::open(
        config.codex_home.clone(),
        config.cli_auth_credentials_store,
        AuthEndpoints::from_env(),
    );
    if let Some(n) = note {
        eprintln!("{n}");
    }
    Ok(broker)
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
}

pub fn main(args: LoginArgs) -> i32 {
    let Some(rt) = runtime() else {
        eprintln!("codex: cannot start runtime");
        return 1;
    };
    rt.block_on(async move {
        let broker = match open_broker() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        };
        if matches!(args.command, Some(LoginCommand::Status)) {
            return status(&broker).await;
        }
        let mut endpoints = AuthEndpoints::from_env();
        if let Some(i) = args.issuer {
            endpoints.issuer = i;
        }
        if let Some(c) = args.client_id {
            endpoints.client_id = c;
        }
        if args.with_api_key {
            return api_key(&broker).await;
        }
        let result = if args.device_auth {
            device(&endpoints).await
        } else {
            browser(&endpoints).await
        };
        match result {
            Ok(auth) => match broker.save(auth).await {
                Ok(()) => {
                    eprintln!("Successfully logged in");
                    0
                }
                Err(e) => {
                    eprintln!("Error logging in: {e}");
                    1
                }
            },
            Err(e) => {
                eprintln!("Error logging in: {e}");
                1
            }
        }
    })
}

async fn api_key(broker: &LocalBroker) -> i32 {
    if std::io::stdin().is_terminal() {
        eprintln!("--with-api-key expects the API key on stdin. Try piping it, e.g. `printenv OPENAI_API_KEY | codex login --with-api-key`.");
        return 1;
    }
    eprintln!("Reading API key from stdin...");
    let mut key = String::new();
    if std::io::stdin().read_to_string(&mut key).is_err() || key.trim().is_empty() {
        eprintln!("No API key provided via stdin.");
        return 1;
    }
    match broker.save(login::api_key_auth(key.trim())).await {
        Ok(()) => {
            eprintln!("API key saved. Authentication is checked when you send a request.");
            0
        }
        Err(e) => {
            eprintln!("Error logging in: {e}");
            1
        }
    }
}

async fn device(endpoints: &AuthEndpoints) -> Result<codex_core::auth::AuthDotJson, String> {
    let code = login::device_code_start(endpoints).await.map_err(|e| e.0)?;
    println!(
        "Follow these steps to sign in with ChatGPT using device code authorization:\n\n1. Open this link in your browser and sign in to your account\n   {}\n\n2. Enter this one-time code (expires in 15 minutes)\n   {}\n\nContinue only if you started this login in Codex. If a website or another person gave you this code, cancel.\n",
        code.verification_url, code.user_code
    );
    login::device_code_finish(endpoints, &code, ctrl_c_token())
        .await
        .map_err(|e| e.0)
}

async fn browser(endpoints: &AuthEndpoints) -> Result<codex_core::auth::AuthDotJson, String> {
    let b = login::browser_start(endpoints, "codex_cli_rs")
        .await
        .map_err(|e| e.0)?;
    eprintln!(
        "Starting local login server.\nIf your browser did not open, navigate to this URL to authenticate:\n\n{}\n\nOn a remote or headless machine? Use `codex login --device-auth` instead.",
        b.auth_url
    );
    b.finish(endpoints, ctrl_c_token()).await.map_err(|e| e.0)
}

fn ctrl_c_token() -> CancellationToken {
    let t = CancellationToken::new();
    let c = t.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        c.cancel();
    });
    t
}

async fn status(broker: &LocalBroker) -> i32 {
    let auth = match broker.load().await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error checking login status: {e}");
            return 1;
        }
    };
    let info = account_of(auth.as_ref());
    match info.auth_mode.as_deref() {
        None => {
            eprintln!("Not logged in");
            1
        }
        Some("apikey") => {
            let key = auth.and_then(|a| a.openai_api_key).unwrap_or_default();
            eprintln!(
                "API key configured - {}\nAuthentication is checked when you send a request.",
                mask_key(&key)
            );
            0
        }
        Some(_) => {
            eprintln!("Logged in using ChatGPT");
            0
        }
    }
}

/// `codex logout`.
pub fn logout() -> i32 {
    let Some(rt) = runtime() else {
        eprintln!("codex: cannot start runtime");
        return 1;
    };
    rt.block_on(async {
        let broker = match open_broker() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                return 1;
            }
        };
        let had = matches!(broker.load().await, Ok(Some(_)) | Err(_));
        match broker.delete().await {
            Ok(()) if had => {
                eprintln!("Successfully logged out");
                0
            }
            Ok(()) => {
                eprintln!("Not logged in");
                0
            }
            Err(e) => {
                eprintln!("Error logging out: {e}");
                1
            }
        }
    })
}
