//! A loopback TCP proxy that injects network faults between the application
//! and one server.
//!
//! Modes (switch at any time with [`Proxy::set`]):
//! * [`Mode::Pass`]: bytes are forwarded both ways.
//! * [`Mode::Stall`]: connections are accepted but nothing is forwarded in
//!   either direction (a black-holed network or a hung load balancer); bytes
//!   queue in the kernel and flow again when the mode changes back.
//! * [`Mode::Drop`]: every open connection is reset, and so is each new one
//!   as soon as it is accepted.
//! * [`Mode::CloseOnAccept`]: open connections keep working; each new one is
//!   accepted and closed without a byte (what a TCP load balancer or pooler
//!   does while the server behind it restarts).
//!
//! The proxy lives on the tokio runtime that created it and stops (closing
//! every connection) when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Accept, forward nothing.
    Stall,
    /// Reset every connection, open and new.
    Drop,
    /// Close each new connection right after accepting it.
    CloseOnAccept,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    mode: Mode,
    /// Bumped by [`Proxy::reset_all`]: connections older than this are reset.
    epoch: u64,
    shutdown: bool,
}

/// A running proxy from `127.0.0.1:<port>` to an upstream address.
pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listen on a free loopback port and forward to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, rx) = watch::channel(State {
            mode: Mode::Pass,
            epoch: 0,
            shutdown: false,
        });
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let rx = rx.clone();
                tokio::spawn(serve(client, upstream, rx));
            }
        });
        Ok(Proxy {
            addr,
            state,
            accepted,
            task,
        })
    }

    /// The port the application connects to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switch the mode.
    pub fn set(&self, mode: Mode) {
        self.state.send_modify(|s| s.mode = mode);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// Reset every open connection once (new ones follow the mode).
    pub fn reset_all(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.state.send_modify(|s| s.shutdown = true);
    }
}

/// Close with RST rather than FIN (the peer sees "connection reset").
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(client: TcpStream, upstream: SocketAddr, mut rx: watch::Receiver<State>) {
    let born = rx.borrow().epoch;
    let _ = client.set_nodelay(true);
    // Until the mode lets this connection through.
    loop {
        let s = *rx.borrow_and_update();
        if s.shutdown || s.mode == Mode::Drop {
            return reset(client);
        }
        match s.mode {
            Mode::CloseOnAccept => return drop(client),
            Mode::Stall => {
                if rx.changed().await.is_err() {
                    return reset(client);
                }
            }
            Mode::Pass | Mode::Drop => break,
        }
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = server.set_nodelay(true);
    pump(client, server, born, rx).await;
}

async fn pump(
    mut client: TcpStream,
    mut server: TcpStream,
    born: u64,
    mut rx: watch::Receiver<State>,
) {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        let s = *rx.borrow_and_update();
        if s.shutdown || s.mode == Mode::Drop || s.epoch != born {
            reset(server);
            return reset(client);
        }
        if s.mode == Mode::Stall {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            r = client.read(&mut up) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => if server.write_all(&up[..n]).await.is_err() { return },
            },
            r = server.read(&mut down) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => if client.write_all(&down[..n]).await.is_err() { return },
            },
            changed = rx.changed() => if changed.is_err() { return },
        }
    }
}
