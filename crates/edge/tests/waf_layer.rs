//! `WafLayer` in front of a small axum router: refusals answer 403 with our JSON error and reach
//! the hook, allowed bodies reach the handler byte for byte, and uploads stream through unread.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::routing::{get, post};
use axum::Router;
use http::{header, Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use sigillum_edge::waf::{Waf, WafConfig, WafEvent, WafLayer, WafMode};
use tokio::sync::{mpsc, Notify};
use tower::ServiceExt;

static BLOCK: LazyLock<Waf> = LazyLock::new(|| Waf::load(&WafConfig::default()).expect("load the CRS"));
static DETECT: LazyLock<Waf> =
    LazyLock::new(|| Waf::load(&WafConfig { mode: WafMode::Detect, ..WafConfig::default() }).expect("load the CRS"));

#[derive(Clone, Default)]
struct App {
    handled: Arc<AtomicUsize>,
    first_chunk: Arc<Notify>,
}

/// Answers with the body it received.
async fn echo(State(app): State<App>, body: Bytes) -> Bytes {
    app.handled.fetch_add(1, Ordering::SeqCst);
    body
}

/// Reads the body as a stream, says when the first piece arrived, answers `<bytes> <sha256>`.
async fn upload(State(app): State<App>, body: Body) -> String {
    app.handled.fetch_add(1, Ordering::SeqCst);
    let mut body = body;
    let (mut total, mut digest) = (0usize, Sha256::new());
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            if total == 0 {
                app.first_chunk.notify_one();
            }
            total += data.len();
            digest.update(&data);
        }
    }
    format!("{total} {}", hex::encode(digest.finalize()))
}

type Events = Arc<Mutex<Vec<WafEvent>>>;

fn router(waf: &Waf) -> (Router, App, Events) {
    let app = App::default();
    let events: Events = Arc::default();
    let sink = events.clone();
    let layer = WafLayer::new(waf.clone()).on_event(Arc::new(move |e| sink.lock().unwrap().push(e)));
    let router = Router::new()
        .route("/api/v1/envelopes", get(echo).post(upload))
        .route("/api/v1/envelopes/{id}/recipients", post(echo))
        .route("/api/v1/signing/{token}/complete", post(echo))
        .layer(layer)
        .with_state(app.clone());
    (router, app, events)
}

fn request(method: &str, uri: &str) -> http::request::Builder {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "sign.example.org")
        .header(header::USER_AGENT, "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
        .header(header::ACCEPT, "application/json");
    if let Some(extensions) = builder.extensions_mut() {
        extensions.insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 4], 5555))));
    }
    builder
}

fn json_request(uri: &str, json: &serde_json::Value) -> Request<Body> {
    let body = json.to_string();
    request("POST", uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

async fn body_of(response: http::Response<Body>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_blocked_request_gets_403_json_with_the_request_id_and_the_hook_is_told() {
    let (router, app, events) = router(&BLOCK);
    let req = request("GET", "/api/v1/envelopes?q=1'%20OR%20'1'='1")
        .header("x-request-id", "req-0190b3c2")
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
    assert_eq!(json["error"]["code"], "waf_blocked");
    assert_eq!(json["error"]["message"], "request blocked by the web application firewall (request id req-0190b3c2)");
    assert_eq!(app.handled.load(Ordering::SeqCst), 0, "the handler must not run");

    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert!(e.rule_ids.contains(&942100) && e.rule_ids.contains(&949110), "{e:?}");
    assert_eq!(e.client_ip, std::net::IpAddr::from([198, 51, 100, 4]));
    assert_eq!((e.method.as_str(), e.path.as_str()), ("GET", "/api/v1/envelopes"));
    assert_eq!((e.mode, e.blocked), (WafMode::Block, true));
    assert_eq!(e.request_id.as_deref(), Some("req-0190b3c2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_large_headers_are_inspected_like_small_ones() {
    // Small header sets are inspected inline on the worker, large ones on the blocking pool: the
    // verdict is the same either way.
    let big = "a".repeat(16 * 1024);
    for extra in ["", big.as_str()] {
        let (router, app, _) = router(&BLOCK);
        let attack =
            request("GET", "/api/v1/envelopes?q=1'%20OR%20'1'='1").header("x-note", extra).body(Body::empty()).unwrap();
        assert_eq!(router.clone().oneshot(attack).await.unwrap().status(), StatusCode::FORBIDDEN);
        let benign = request("GET", "/api/v1/envelopes?q=lease").header("x-note", extra).body(Body::empty()).unwrap();
        assert_eq!(router.oneshot(benign).await.unwrap().status(), StatusCode::OK, "{} header bytes", extra.len());
        assert_eq!(app.handled.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn json_bodies_are_inspected_and_reach_the_handler_intact() {
    let (router, app, events) = router(&BLOCK);
    let benign =
        serde_json::json!({"name": "Seán O'Brien", "email": "sean@example.ie", "role": "signer", "routing_order": 1});
    let response =
        router.clone().oneshot(json_request("/api/v1/envelopes/0190b3c2/recipients", &benign)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_of(response).await, benign.to_string().as_bytes());

    // A drawn signature of 50 KB, through the exclusion for its route.
    let mut png = vec![0u8; 37_500];
    getrandom::fill(&mut png).unwrap();
    let png = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, png);
    let signature = serde_json::json!({"values": {}, "signature": {"kind": "drawn", "png_base64": png}});
    let response = router.clone().oneshot(json_request("/api/v1/signing/tok/complete", &signature)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_of(response).await, signature.to_string().as_bytes());
    assert_eq!(app.handled.load(Ordering::SeqCst), 2);
    assert!(events.lock().unwrap().is_empty());

    // The same route refuses an attack in the body: the layer did feed it to the rules.
    let attack = serde_json::json!({"name": "<script>alert(1)</script>"});
    let response = router.oneshot(json_request("/api/v1/envelopes/0190b3c2/recipients", &attack)).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.handled.load(Ordering::SeqCst), 2);
    assert!(events.lock().unwrap()[0].rule_ids.iter().any(|id| id / 1000 == 941));
}

#[tokio::test]
async fn a_textual_body_over_the_cap_is_refused_with_413() {
    let (router, app, _) = router(&BLOCK);
    let big = serde_json::json!({"name": "x".repeat(1 << 20)});
    let response = router.oneshot(json_request("/api/v1/envelopes/0190b3c2/recipients", &big)).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let json: serde_json::Value = serde_json::from_slice(&body_of(response).await).unwrap();
    assert_eq!(json["error"]["code"], "payload_too_large");
    assert_eq!(app.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn each_route_has_its_own_inspection_cap() {
    let app = App::default();
    let cap = |_: &http::Method, path: &str| if path.ends_with("/complete") { 256 * 1024 } else { 16 * 1024 };
    let router = Router::new()
        .route("/api/v1/envelopes/{id}/recipients", post(echo))
        .route("/api/v1/signing/{token}/complete", post(echo))
        .layer(WafLayer::new(BLOCK.clone()).body_cap_by_route(Arc::new(cap)))
        .with_state(app.clone());
    let body = serde_json::json!({"image": "A".repeat(100 * 1024)});
    let small_route =
        router.clone().oneshot(json_request("/api/v1/envelopes/0190b3c2/recipients", &body)).await.unwrap();
    assert_eq!(small_route.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.handled.load(Ordering::SeqCst), 0, "refused before the handler");
    let big_route = router.oneshot(json_request("/api/v1/signing/tok/complete", &body)).await.unwrap();
    assert_eq!(big_route.status(), StatusCode::OK);
    assert_eq!(body_of(big_route).await, serde_json::to_vec(&body).unwrap(), "inspected and passed on whole");
}

/// A request body fed piece by piece from the test.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

#[tokio::test]
async fn a_large_multipart_upload_streams_to_the_handler_untouched() {
    // The file part's content is never buffered: the handler gets its first piece at once.
    let (router, app, events) = router(&BLOCK);
    let boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"contract.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    );
    let tail =
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nNDA\r\n--{boundary}--\r\n");
    let mut chunks = vec![Bytes::from(head)];
    for i in 0..128u32 {
        // 8 MiB of PDF-ish binary, well over the 1 MiB cap.
        chunks
            .push(Bytes::from((0..65_536u32).map(|j| (j.wrapping_mul(31).wrapping_add(i)) as u8).collect::<Vec<u8>>()));
    }
    chunks.push(Bytes::from(tail));
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let digest = hex::encode(
        chunks
            .iter()
            .fold(Sha256::new(), |mut d, c| {
                d.update(c);
                d
            })
            .finalize(),
    );

    let (tx, rx) = mpsc::channel(1);
    let req = request("POST", "/api/v1/envelopes")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}"))
        .body(Body::new(ChannelBody(rx)))
        .unwrap();
    let call = tokio::spawn(router.oneshot(req));
    let mut chunks = chunks.into_iter();
    tx.send(chunks.next().unwrap()).await.unwrap();
    // The handler has the first piece while the rest is not even sent: nothing buffered it.
    tokio::time::timeout(Duration::from_secs(10), app.first_chunk.notified()).await.expect("the upload did not stream");
    for chunk in chunks {
        tx.send(chunk).await.unwrap();
    }
    drop(tx);
    let response = call.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(String::from_utf8(body_of(response).await.to_vec()).unwrap(), format!("{total} {digest}"));
    assert!(events.lock().unwrap().is_empty());
}

/// An upload form as browsers send it: a title part, then the file part with some PDF bytes.
fn upload_form(title: &str, filename: &str) -> (String, Vec<u8>) {
    let b = "----WebKitFormBoundaryQ2n7k9";
    let mut body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n{title}\r\n--{b}\r\n\
         Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    // PDF content that would trip the rules if it were (wrongly) inspected as text.
    body.extend_from_slice(b"%PDF-1.7\n1 0 obj << /JS (<script>alert(1)</script>' OR '1'='1) >> endobj\n");
    body.extend_from_slice(format!("\r\n--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

async fn send_form(router: Router, content_type: &str, body: Vec<u8>) -> http::Response<Body> {
    let req = request("POST", "/api/v1/envelopes")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    router.oneshot(req).await.unwrap()
}

#[tokio::test]
async fn upload_forms_have_their_fields_and_filename_inspected_but_not_the_file() {
    // A clean form passes, whole, although the PDF bytes look like an attack.
    let (clean, app, events) = router(&BLOCK);
    let (ct, body) = upload_form("NDA Müller & Söhne", "contract.pdf");
    let digest = hex::encode(Sha256::digest(&body));
    let response = send_form(clean, &ct, body.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(String::from_utf8(body_of(response).await.to_vec()).unwrap(), format!("{} {digest}", body.len()));
    assert_eq!(app.handled.load(Ordering::SeqCst), 1);
    assert!(events.lock().unwrap().is_empty());

    // A script in the title, or a server-side script name as the filename, is refused.
    for (title, filename, family) in [
        ("<script>alert(document.cookie)</script>", "contract.pdf", 941),
        ("x' UNION SELECT password FROM users--", "contract.pdf", 942),
        ("Contract", "shell.php", 933),
        ("Contract", ".htaccess", 932),
    ] {
        let (guarded, app, events) = router(&BLOCK);
        let (ct, body) = upload_form(title, filename);
        let response = send_form(guarded, &ct, body).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{title} / {filename}");
        assert_eq!(app.handled.load(Ordering::SeqCst), 0);
        let events = events.lock().unwrap();
        assert!(events[0].rule_ids.iter().any(|id| id / 1000 == family), "{title} / {filename}: {:?}", events[0]);
    }
}

#[tokio::test]
async fn a_part_that_only_mentions_the_file_is_still_inspected() {
    // The title part carries a filename parameter and a `name="file"` lookalike; the part is the
    // title (as the application reads it), so its content is inspected.
    let b = "b0undary";
    let body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"title\"; filename=\"name=\\\"file\\\"\"\r\n\r\n\
         <script>alert(1)</script>\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF\r\n--{b}--\r\n"
    );
    let (guarded, app, _) = router(&BLOCK);
    let response = send_form(guarded, &format!("multipart/form-data; boundary={b}"), body.into_bytes()).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_and_oversized_forms_are_refused_before_the_handler() {
    // Bare line feeds, where parsers disagree.
    let b = "b0undary";
    let lf = format!("--{b}\nContent-Disposition: form-data; name=\"title\"\n\nx\n--{b}--\n");
    let (guarded, app, _) = router(&BLOCK);
    let response = send_form(guarded, &format!("multipart/form-data; boundary={b}"), lf.into_bytes()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body_of(response).await).unwrap()["error"]["code"],
        "invalid_body"
    );
    assert_eq!(app.handled.load(Ordering::SeqCst), 0);
    // Form fields before the file larger than the inspection cap.
    let (ct, body) = upload_form(&"A".repeat(1_200_000), "contract.pdf");
    let (guarded, app, _) = router(&BLOCK);
    assert_eq!(send_form(guarded, &ct, body).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn detect_mode_reports_and_lets_through() {
    let (router, app, events) = router(&DETECT);
    let req = request("GET", "/api/v1/envelopes?q=1'%20OR%20'1'='1").body(Body::empty()).unwrap();
    assert_eq!(router.oneshot(req).await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.handled.load(Ordering::SeqCst), 1);
    let events = events.lock().unwrap();
    assert_eq!(events.len(), 1);
    assert!(
        !events[0].blocked && events[0].mode == WafMode::Detect && events[0].rule_ids.contains(&942100),
        "{:?}",
        events[0]
    );
}

#[tokio::test]
async fn http2_requests_are_given_their_host_from_the_authority() {
    let (router, _, events) = router(&DETECT);
    let h2 = |uri: &str| {
        let mut req = Request::builder()
            .method("GET")
            .uri(uri)
            .version(Version::HTTP_2)
            .header(header::USER_AGENT, "Mozilla/5.0")
            .header(header::ACCEPT, "*/*")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([198, 51, 100, 4], 5555))));
        req
    };
    assert_eq!(
        router.clone().oneshot(h2("https://sign.example.org/api/v1/envelopes")).await.unwrap().status(),
        StatusCode::OK
    );
    assert!(events.lock().unwrap().is_empty(), "{:?}", events.lock().unwrap());
    // Without any host at all, CRS notices (920280), which shows the check above is real.
    router.oneshot(h2("/api/v1/envelopes")).await.unwrap();
    assert!(events.lock().unwrap().iter().any(|e| e.rule_ids.contains(&920280)));
}

#[tokio::test]
async fn off_mode_is_a_pass_through() {
    let off = Waf::load(&WafConfig { mode: WafMode::Off, ..WafConfig::default() }).unwrap();
    let (router, app, events) = router(&off);
    let req = request("GET", "/api/v1/envelopes?q=1'%20OR%20'1'='1").body(Body::empty()).unwrap();
    assert_eq!(router.oneshot(req).await.unwrap().status(), StatusCode::OK);
    assert_eq!(app.handled.load(Ordering::SeqCst), 1);
    assert!(events.lock().unwrap().is_empty());
}
