//! `codex-broker`: the process that holds the credentials. It is the only
//! writer of `auth.json` among the daemon's processes: workers ask it (through
//! codexd) for the access token and for a refresh after a 401, and it
//! refreshes ahead of expiry on its own. Started and restarted by codexd
//! through the launcher ([`codex_ipc::broker_link`]).

use std::time::Duration;

use codex_core::auth::refresh::AuthEndpoints;
use codex_core::auth::LocalBroker;
use codex_ipc::broker_link::{FromBroker, ToBroker};
use codex_ipc::launcher::{set_process_name, take_link, Role};
use codex_ipc::link::serve_link;
use tokio::sync::mpsc;

const INIT_DEADLINE: Duration = Duration::from_secs(30);

/// Entry point of the `codex-broker` role. Returns the exit code.
pub fn main() -> i32 {
    set_process_name(Role::Broker.process_name());
    let link = match take_link() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("codex-broker: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("codex-broker: cannot start runtime: {e}");
            return 1;
        }
    };
    rt.block_on(run(link))
}

async fn run(link: std::os::unix::net::UnixStream) -> i32 {
    let (out_tx, mut in_rx, writer) =
        match serve_link::<ToBroker, FromBroker>(link, 1024, "codex-broker") {
            Ok(l) => l,
            Err(e) => {
                eprintln!("codex-broker: bad link: {e}");
                return 2;
            }
        };
    let init = match tokio::time::timeout(INIT_DEADLINE, in_rx.recv()).await {
        Ok(Some(ToBroker::Init(i))) => i,
        _ => {
            eprintln!("codex-broker: no Init from the supervisor");
            return 2;
        }
    };
    let (broker, note) = LocalBroker::open(init.codex_home, init.store, AuthEndpoints::from_env());
    let _ = out_tx
        .send(FromBroker::Ready {
            store: broker.store_name().to_string(),
            note,
        })
        .await;
    let proactive = tokio::spawn(broker.clone().run_proactive_refresh());
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    broker.set_event_sink(ev_tx);
    let events_out = out_tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            if events_out
                .send(FromBroker::Event { event: ev })
                .await
                .is_err()
            {
                break;
            }
        }
    });
    while let Some(msg) = in_rx.recv().await {
        match msg {
            ToBroker::Request { id, request } => {
                let broker = broker.clone();
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let result = broker.handle(request).await;
                    let _ = out.send(FromBroker::Reply { id, result }).await;
                });
            }
            ToBroker::Init(_) => tracing::warn!("codex-broker: ignoring a second Init"),
        }
    }
    // The supervisor is gone.
    proactive.abort();
    drop(out_tx);
    writer.close(Duration::from_secs(2)).await;
    0
}
