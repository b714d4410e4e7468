//! The API's transport: TLS (rustls, client certificates from the node CA), HTTP/1.1 and
//! HTTP/2 (hyper), on a single-threaded tokio runtime in the API's own thread.
use super::{certs::Pki, ApiError, ApiOptions};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::sync::Arc;

/// The server's TLS settings: its certificate, and client certificates verified against
/// the node CA when given (none given: the request is answered 401, as the API server).
pub fn tls_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, ApiError> {
    let tls = |e: &dyn std::fmt::Display| ApiError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_cert.as_bytes()) {
        roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(&e))?;
    let chain = CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).map_err(|e| tls(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The largest request body taken (the API server's limit, 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// What a request handler reads.
#[derive(Debug)]
pub struct State {
    pub opts: ApiOptions,
}

/// A response: a whole JSON document, or a watch's stream of events.
pub type Reply = Response<BoxBody<Bytes, Infallible>>;

/// The API thread: runs the accept loop until the process ends.
pub fn run(listener: std::net::TcpListener, tls: Arc<rustls::ServerConfig>, opts: ApiOptions) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podrun serve: the Kubernetes API's runtime: {e}");
            return;
        }
    };
    let state = Arc::new(State { opts });
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("podrun serve: the Kubernetes API's listener: {e}");
                return;
            }
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, state) = (acceptor.clone(), state.clone());
            tokio::spawn(async move { connection(acceptor, tcp, state).await });
        }
    });
}

/// One client connection: the TLS handshake, then HTTP/1.1 or HTTP/2 (ALPN).
async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    state: Arc<State>,
) {
    let Ok(stream) = acceptor.accept(tcp).await else {
        return;
    };
    let authenticated = stream
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|c| !c.is_empty());
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let state = state.clone();
        async move {
            if !authenticated {
                return Ok::<Reply, Infallible>(super::status::unauthorized());
            }
            let (parts, body) = req.into_parts();
            let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    return Ok(super::status::failure(
                        413,
                        "RequestEntityTooLarge",
                        "Request entity too large: limit is 3145728",
                        None,
                    ))
                }
            };
            let req = Request::from_parts(parts, body);
            Ok(super::resources::handle(&state, &req))
        }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
