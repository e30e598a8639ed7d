//! A worker whose commit landed but whose reply never came (its connection lost right after
//! the request went out) must still know, and say, that its result was committed.
//!
//! The worker reaches ZooKeeper through a small proxy that reads the client's packets: when it
//! sees a `multi` request (the worker's commit), it forwards it and then holds everything the
//! server sends back on that connection. The commit lands; its reply never arrives; the worker
//! loses the connection, reconnects through the proxy on a fresh one, and must find out.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{shared_standalone, wait_data, Farm, LIMIT};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// ZooKeeper's opcode of a multi request.
const OP_MULTI: i32 = 14;

/// Starts the proxy to `server`; returns its address and whether it has held a reply.
async fn proxy(server: String) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let held = Arc::new(AtomicBool::new(false));
    let held_any = held.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(&server).await.unwrap();
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = upstream.into_split();
            let hold = Arc::new(AtomicBool::new(false));
            let (hold_up, held_any) = (hold.clone(), held_any.clone());
            // Client to server, packet by packet (4-byte length, then the packet): the first is
            // the connect request; after it, bytes 4..8 of a packet are its type.
            tokio::spawn(async move {
                let mut first = true;
                loop {
                    let mut len = [0u8; 4];
                    if client_rx.read_exact(&mut len).await.is_err() {
                        break;
                    }
                    let mut packet = vec![0u8; u32::from_be_bytes(len) as usize];
                    if client_rx.read_exact(&mut packet).await.is_err() {
                        break;
                    }
                    if !first && packet.len() >= 8 && i32::from_be_bytes(packet[4..8].try_into().unwrap()) == OP_MULTI {
                        hold_up.store(true, Ordering::SeqCst);
                        held_any.store(true, Ordering::SeqCst);
                    }
                    first = false;
                    if server_tx.write_all(&len).await.is_err() || server_tx.write_all(&packet).await.is_err() {
                        break;
                    }
                }
            });
            // Server to client, until a multi went up on this connection: then nothing more.
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = server_rx.read(&mut buf).await {
                    if n == 0 || hold.load(Ordering::SeqCst) {
                        break;
                    }
                    if client_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                // Keep the connection open and silent: the worker must notice by itself.
                if hold.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
            });
        }
    });
    (addr, held)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_reply_was_lost_is_known_to_have_landed() {
    let zk = shared_standalone();
    let farm = Farm::new(&zk.connect_string(), "lostreply", Duration::from_secs(2));
    let observer = farm.observer().await;
    let (proxy_addr, held) = proxy(zk.servers()[0].address()).await;
    let _master = farm.master("m1");
    // The worker alone goes through the proxy.
    let worker_farm = Farm {
        hosts: proxy_addr,
        chroot: farm.chroot.clone(),
        session_timeout: Duration::from_secs(2),
        dir: farm.dir.clone(),
    };
    let worker = worker_farm.spawn("w1", &["worker", "--id", "w1"]);
    let mut client = farm.client("c1", 1, 1, r#"{"kind":"echo","message":"landed"}"#);
    let summary = client.json_summary().await;
    assert_eq!(summary["completed"], 1, "{summary}");
    assert!(held.load(Ordering::SeqCst), "the proxy never saw the commit");
    // The worker never got the commit's reply; it must still know that its result landed.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !worker.log().contains("result committed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never said its result was committed:\n{}",
            worker.log()
        );
        // A log file has no event to wait on: polled, bounded.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(worker.log().contains("its reply was lost"), "{}", worker.log());
    // And it is free again for the next task.
    let record = wait_data(&observer, "/workers/w1", "the worker free again", |d| {
        let record = taskfarm::protocol::WorkerRecord::parse(d?).ok()?;
        record.task.is_none().then_some(record)
    })
    .await;
    assert_eq!(
        record.last.as_deref(),
        Some("c1-00000001@1"),
        "the commit left its mark"
    );
}
