//! `codex-broker`: the process that holds the credentials. It is the only
//! writer of `auth.json` among the daemon's processes: workers ask it (through
//! codexd) for the access token and for a refresh after a 401, and it
//! refreshes ahead of expiry on its own. Started and restarted by codexd
//! through the launcher ([`codex_ipc::broker_link`]).

use std::time::Duration;

use codex_core::auth::broker::{broker_service, BrokerService};
use codex_core::auth::refresh::AuthEndpoints;
use codex_core::auth::LocalBroker;
use codex_ipc::broker_link::{BrokerReady, FromBroker, ToBroker};
use codex_ipc::launcher::{set_process_name, take_link, Role};
use codex_ipc::link::serve_link;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

const INIT_DEADLINE: Duration = Duration::from_secs(30);

/// Entry point of the `codex-broker` role. Returns the exit code.
pub fn main() -> i32 {
    service_main(Role::Broker, run)
}

/// The start of every service process (`codex-broker`, `codex-memory`): its
/// name in `ps`, the link on fd 3, a single-threaded runtime running `run`.
pub(crate) fn service_main<F, Fut>(role: Role, run: F) -> i32
where
    F: FnOnce(std::os::unix::net::UnixStream) -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    let name = role.process_name();
    set_process_name(name);
    let link = match take_link() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start runtime: {e}");
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
        .send(FromBroker::Ready(BrokerReady {
            store: broker.store_name().to_string(),
            note,
        }))
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
    let service = broker_service(broker.clone(), crate::limits::broker::MAX_IN_FLIGHT);
    serve(service, &mut in_rx, &out_tx).await;
    // The supervisor is gone.
    proactive.abort();
    drop(out_tx);
    writer.close(Duration::from_secs(2)).await;
    0
}

/// Answers requests until the link closes. Each request either starts at
/// once (a task of its own) or, with [`crate::limits::broker::MAX_IN_FLIGHT`]
/// already in flight, is answered `Overloaded` at once: the service sheds
/// load, so this loop never waits and nothing queues here.
async fn serve(
    mut service: BrokerService,
    in_rx: &mut mpsc::Receiver<ToBroker>,
    out_tx: &mpsc::Sender<FromBroker>,
) {
    while let Some(msg) = in_rx.recv().await {
        match msg {
            ToBroker::Request { id, request, .. } => {
                let call = match service.ready().await {
                    Ok(svc) => svc.call(request),
                    Err(e) => {
                        let _ = out_tx.send(FromBroker::Reply { id, result: Err(e) }).await;
                        continue;
                    }
                };
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let result = call.await;
                    let _ = out.send(FromBroker::Reply { id, result }).await;
                });
            }
            ToBroker::Init(_) => tracing::warn!("codex-broker: ignoring a second Init"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use codex_core::auth::{AuthError, BrokerRequest, BrokerResponse};

    use super::*;

    #[tokio::test]
    async fn requests_beyond_the_limit_are_answered_overloaded_at_once() {
        // A broker whose every answer waits for the gate.
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = gate.clone();
        let slow = tower::service_fn(move |_req: BrokerRequest| {
            let g = g.clone();
            async move {
                let _permit = g.acquire().await;
                Ok::<_, AuthError>(BrokerResponse::Done)
            }
        });
        let (in_tx, mut in_rx) = mpsc::channel(64);
        let (out_tx, mut out_rx) = mpsc::channel(64);
        let server = tokio::spawn(async move {
            serve(broker_service(slow, 2), &mut in_rx, &out_tx).await;
        });
        for id in 0..10 {
            in_tx
                .send(ToBroker::Request {
                    id,
                    request: BrokerRequest::Account,
                    deadline_ms: None,
                })
                .await
                .unwrap();
        }
        let mut shed = Vec::new();
        for _ in 0..8 {
            let reply = tokio::time::timeout(Duration::from_secs(5), out_rx.recv())
                .await
                .expect("the excess is answered without waiting for the gate")
                .unwrap();
            let FromBroker::Reply { id, result } = reply else {
                panic!("{reply:?}");
            };
            assert_eq!(result, Err(AuthError::Overloaded));
            shed.push(id);
        }
        shed.sort_unstable();
        assert_eq!(shed, (2..10).collect::<Vec<_>>(), "the first two run");
        gate.add_permits(2);
        let mut done = Vec::new();
        for _ in 0..2 {
            let reply = tokio::time::timeout(Duration::from_secs(5), out_rx.recv())
                .await
                .unwrap()
                .unwrap();
            let FromBroker::Reply { id, result } = reply else {
                panic!("{reply:?}");
            };
            assert_eq!(result, Ok(BrokerResponse::Done));
            done.push(id);
        }
        done.sort_unstable();
        assert_eq!(done, vec![0, 1]);
        // Capacity is back once they are done.
        gate.add_permits(1);
        in_tx
            .send(ToBroker::Request {
                id: 10,
                request: BrokerRequest::Account,
                deadline_ms: None,
            })
            .await
            .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), out_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                reply,
                FromBroker::Reply {
                    id: 10,
                    result: Ok(BrokerResponse::Done)
                }
            ),
            "{reply:?}"
        );
        drop(in_tx);
        server.await.unwrap();
    }
}
