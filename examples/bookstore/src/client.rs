//! A small HTTP/1.1 JSON client on hyper (one keep-alive connection,
//! reopened when it breaks), for the load generator and the tests.
//! Loopback addresses only.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use persistence::{Error, Result};
use serde_json::Value;

/// One connection to a server on this machine.
pub struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Bearer token sent with every request, when set.
    pub token: Option<String>,
    /// Longest wait for one request (connect, send, read the body); default 60 s.
    pub timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    /// A client of `addr`, which must be a loopback address.
    pub fn new(addr: SocketAddr) -> Result<Client> {
        if !addr.ip().is_loopback() {
            return Err(Error::invalid_input(
                "this client only talks to loopback addresses (127.0.0.0/8, ::1)",
            ));
        }
        Ok(Client {
            addr,
            sender: None,
            token: None,
            timeout: Duration::from_secs(60),
        })
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| Error::unavailable(format!("connect {}: {e}", self.addr)))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| Error::unavailable(format!("handshake: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| Error::unavailable("no connection"))
    }

    /// Send a request; `body` is sent as JSON.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.addr.to_string());
        if let Some(t) = &self.token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match body {
            Some(v) => {
                req = req.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(v).map_err(|e| Error::invalid_input(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| Error::invalid_input(format!("request: {e}")))?;
        let sender = self.connect().await?;
        sender
            .ready()
            .await
            .map_err(|e| Error::unavailable(format!("connection: {e}")))?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(Error::unavailable(format!("request failed: {e}")));
            }
        };
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::unavailable(format!("reading the body: {e}")))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// GET.
    pub async fn get(&mut self, path: &str) -> Result<Reply> {
        self.send(Method::GET, path, None).await
    }
    /// POST JSON.
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<Reply> {
        self.send(Method::POST, path, Some(body)).await
    }
    /// PUT JSON.
    pub async fn put(&mut self, path: &str, body: &Value) -> Result<Reply> {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// Log in as seeded customer `i`; keeps the token for later requests.
    pub async fn login_as(&mut self, i: usize) -> Result<()> {
        let r = self
            .post(
                "/api/login",
                &serde_json::json!({
                    "email": crate::seed::customer_email(i),
                    "password": crate::app::DEMO_PASSWORD,
                }),
            )
            .await?;
        match r.json().get("token").and_then(Value::as_str) {
            Some(t) if r.status == StatusCode::OK => {
                self.token = Some(t.to_string());
                Ok(())
            }
            _ => Err(Error::backend(format!(
                "login failed: {} {}",
                r.status,
                r.text()
            ))),
        }
    }
}
