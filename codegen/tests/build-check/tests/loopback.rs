//! The generated clients call the generated servers over 127.0.0.1: one server with every
//! hazard service registered (so their method ids do not collide), unary calls through a
//! `Client` and through a `Channel`. `streaming.rs` covers the streaming rpcs.

mod common;

use std::time::Duration;

use bytes::Bytes;
use volley::{CallOptions, Channel, Client, Code, MethodId, Request, Response, Server, ServerHandle, Status};
use volley_codegen_tests::common::Money;
use volley_codegen_tests::documented::orders as doc;
use volley_codegen_tests::proto::{self, google, grpc, hazards};

use hazards::keywords::Payload;
use hazards::names as n;

/// Echoes with the name of the method that answered, for `hazards.keywords.Keywords`.
struct Echo;

fn tagged(method: &str, request: Request<Payload>) -> Result<Response<Payload>, Status> {
    Ok(Response::new(Payload {
        text: format!("{method}:{}", request.into_inner().text),
    }))
}

impl hazards::keywords::keywords_server::Keywords for Echo {
    async fn r#move(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("move", request)
    }
    async fn r#return(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("return", request)
    }
    async fn r#type(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("type", request)
    }
    async fn r#match(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("match", request)
    }
    async fn r#async(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("async", request)
    }
    async fn self_(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("Self", request)
    }
    async fn crate_(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("crate", request)
    }
    async fn new_(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("New", request)
    }
    async fn into_inner_(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("IntoInner", request)
    }
    async fn clone(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("Clone", request)
    }
    async fn register(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("Register", request)
    }
    async fn default(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("Default", request)
    }
    async fn add(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("Add", request)
    }
    async fn next(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("Next", request)
    }
    async fn to_string(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("ToString", request)
    }
    async fn into_vec(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("IntoVec", request)
    }
    async fn as_ref(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("AsRef", request)
    }
    async fn from_str(&self, request: Request<Payload>) -> Result<Response<Payload>, Status> {
        tagged("FromStr", request)
    }
}

/// Serves the services of `hazards.names`, whose messages are named like prelude and volley
/// types.
struct Names;

impl n::index_server::Index for Names {
    async fn try_add_lock(&self, request: Request<n::Request>) -> Result<Response<n::Response>, Status> {
        Ok(Response::new(n::Response {
            id: request.into_inner().id,
        }))
    }
    async fn place_sltp_order(&self, request: Request<n::Option>) -> Result<Response<n::Result>, Status> {
        Ok(Response::new(n::Result {
            ok: request.into_inner().value == "sl-tp",
        }))
    }
    async fn get_status(&self, request: Request<n::Status>) -> Result<Response<n::Client>, Status> {
        Ok(Response::new(n::Client {
            name: format!("code {}", request.into_inner().code),
        }))
    }
    async fn http_get(&self, request: Request<n::Server>) -> Result<Response<n::Server>, Status> {
        Ok(Response::new(request.into_inner()))
    }
    async fn spawn(&self, request: Request<n::Future>) -> Result<Response<n::Arc>, Status> {
        Ok(Response::new(n::Arc {
            count: request.into_inner().at as i32,
        }))
    }
    async fn nest(&self, request: Request<n::volley::Codegen>) -> Result<Response<n::Volley>, Status> {
        Ok(Response::new(n::Volley {
            codegen: Some(request.into_inner()),
        }))
    }
}

impl n::send_server::Send for Names {
    async fn get(&self, request: Request<n::Clone>) -> Result<Response<n::Clone>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

impl n::sync_server::Sync for Names {
    async fn get(&self, request: Request<n::Request>) -> Result<Response<n::Response>, Status> {
        Ok(Response::new(n::Response {
            id: format!("sync {}", request.into_inner().id),
        }))
    }
}

impl n::t_server::T for Names {
    async fn get(&self, request: Request<n::Request>) -> Result<Response<n::Response>, Status> {
        Ok(Response::new(n::Response {
            id: format!("t {}", request.into_inner().id),
        }))
    }
}

impl n::default_server::Default for Names {
    async fn get(&self, _request: Request<n::Request>) -> Result<Response<n::Result>, Status> {
        Ok(Response::new(n::Result { ok: true }))
    }
}

impl n::debug_server::Debug for Names {
    async fn get(&self, request: Request<n::Request>) -> Result<Response<n::Option>, Status> {
        Ok(Response::new(n::Option {
            value: request.into_inner().id,
        }))
    }
}

/// `Get` in services Alpha, Beta and Gamma of one package, and `Store.Get` in two packages:
/// answers with the service's name so a wrong route shows.
struct Named(&'static str);

impl n::alpha_server::Alpha for Named {
    async fn get(&self, _request: Request<n::Request>) -> Result<Response<n::Response>, Status> {
        Ok(Response::new(n::Response { id: "alpha".into() }))
    }
}
impl n::beta_server::Beta for Named {
    async fn get(&self, _request: Request<n::Request>) -> Result<Response<n::Response>, Status> {
        Ok(Response::new(n::Response { id: "beta".into() }))
    }
}
impl n::gamma_server::Gamma for Named {
    async fn get(&self, _request: Request<n::Request>) -> Result<Response<n::Response>, Status> {
        Ok(Response::new(n::Response { id: "gamma".into() }))
    }
}
impl hazards::alpha::store_server::Store for Named {
    async fn get(&self, request: Request<hazards::alpha::Item>) -> Result<Response<hazards::alpha::Item>, Status> {
        Ok(Response::new(hazards::alpha::Item {
            key: format!("{}:{}", self.0, request.into_inner().key),
        }))
    }
}
impl hazards::beta::store_server::Store for Named {
    async fn get(&self, request: Request<hazards::beta::Item>) -> Result<Response<hazards::beta::Item>, Status> {
        Ok(Response::new(hazards::beta::Item {
            key: format!("{}:{}", self.0, request.into_inner().key),
        }))
    }
}

/// The remaining hazard services without streaming rpcs, one implementation each.
struct Misc;

impl proto::lonely_server::Lonely for Misc {
    async fn ping(&self, request: Request<proto::Ping>) -> Result<Response<proto::Ping>, Status> {
        Ok(Response::new(proto::Ping {
            seq: request.into_inner().seq + 1,
        }))
    }
}

impl hazards::proto2::legacy_store_server::LegacyStore for Misc {
    async fn touch(&self, request: Request<hazards::proto2::Legacy>) -> Result<Response<hazards::proto2::Legacy>, Status> {
        let mut legacy = request.into_inner();
        legacy.count = Some(legacy.count() + 1);
        Ok(Response::new(legacy))
    }
}

impl hazards::proto3_optional::maybes_server::Maybes for Misc {
    async fn echo(&self, request: Request<hazards::proto3_optional::Maybe>) -> Result<Response<hazards::proto3_optional::Maybe>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

impl hazards::well_known::well_known_server::WellKnown for Misc {
    async fn ping(&self, _request: Request<()>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
    async fn wrap(&self, request: Request<prost_types::Any>) -> Result<Response<prost_types::Any>, Status> {
        let mut any = request.into_inner();
        any.type_url.push_str("#wrapped");
        Ok(Response::new(any))
    }
    async fn now(&self, _request: Request<()>) -> Result<Response<prost_types::Timestamp>, Status> {
        Ok(Response::new(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }))
    }
}

impl hazards::r#type::r#match::locator_server::Locator for Misc {
    async fn locate(&self, request: Request<hazards::r#type::r#match::Fix>) -> Result<Response<google::r#type::LatLng>, Status> {
        let position = request
            .into_inner()
            .position
            .ok_or_else(|| Status::invalid_argument("no position"))?;
        Ok(position.into())
    }
    async fn r#where(&self, request: Request<google::r#type::LatLng>) -> Result<Response<hazards::r#type::r#match::Fix>, Status> {
        Ok(Response::new(hazards::r#type::r#match::Fix {
            position: Some(request.into_inner()),
            label: "here".into(),
        }))
    }
}

impl hazards::options::auth_server::Auth for Misc {
    async fn sign_in(&self, request: Request<hazards::options::Login>) -> Result<Response<hazards::options::Login>, Status> {
        let mut login = request.into_inner();
        login.password.clear();
        Ok(Response::new(login))
    }
    async fn sign_in_old(&self, _request: Request<hazards::options::Login>) -> Result<Response<hazards::options::Login>, Status> {
        Err(Status::unimplemented("SignInOld is deprecated; call SignIn"))
    }
}

#[allow(deprecated)]
impl hazards::options::old_auth_server::OldAuth for Misc {
    async fn sign_in(&self, request: Request<hazards::options::Login>) -> Result<Response<hazards::options::Login>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

impl hazards::pricing::pricing_server::Pricing for Misc {
    async fn quote(&self, request: Request<Money>) -> Result<Response<Money>, Status> {
        let money = request.into_inner();
        Ok(Response::new(Money {
            units: money.units * 2,
            ..money
        }))
    }
}

/// A server on 127.0.0.1 with every generated service, and a client connected to it.
async fn serve_all() -> (ServerHandle, Client) {
    let misc = std::sync::Arc::new(Misc);
    #[allow(deprecated)]
    let old_auth = hazards::options::old_auth_server::OldAuthServer::from_arc(misc.clone());
    let server = Server::builder()
        .add_service(hazards::keywords::keywords_server::KeywordsServer::new(Echo))
        .add_service(n::index_server::IndexServer::new(Names))
        .add_service(n::send_server::SendServer::new(Names))
        .add_service(n::sync_server::SyncServer::new(Names))
        .add_service(n::t_server::TServer::new(Names))
        .add_service(n::default_server::DefaultServer::new(Names))
        .add_service(n::debug_server::DebugServer::new(Names))
        .add_service(n::alpha_server::AlphaServer::new(Named("alpha")))
        .add_service(n::beta_server::BetaServer::new(Named("beta")))
        .add_service(n::gamma_server::GammaServer::new(Named("gamma")))
        .add_service(hazards::alpha::store_server::StoreServer::new(Named("alpha")))
        .add_service(hazards::beta::store_server::StoreServer::new(Named("beta")))
        .add_service(proto::lonely_server::LonelyServer::from_arc(misc.clone()))
        .add_service(hazards::proto2::legacy_store_server::LegacyStoreServer::from_arc(misc.clone()))
        .add_service(hazards::proto3_optional::maybes_server::MaybesServer::from_arc(misc.clone()))
        .add_service(hazards::well_known::well_known_server::WellKnownServer::from_arc(misc.clone()))
        .add_service(hazards::r#type::r#match::locator_server::LocatorServer::from_arc(misc.clone()))
        .add_service(hazards::options::auth_server::AuthServer::from_arc(misc.clone()))
        .add_service(old_auth)
        .add_service(hazards::pricing::pricing_server::PricingServer::from_arc(misc));
    let server = common::add_services(server, &Default::default())
        .build()
        .expect("every generated service registers without a method-id collision");
    let handle = server.serve("127.0.0.1:0").await.unwrap();
    let client = Client::connect(handle.local_addr()).await.unwrap();
    (handle, client)
}

fn payload(text: &str) -> Payload {
    Payload { text: text.into() }
}

#[tokio::test]
async fn keyword_named_rpcs_reach_their_handlers() {
    let (handle, client) = serve_all().await;
    let keywords = hazards::keywords::keywords_client::KeywordsClient::new(client);
    let cases = [
        ("move", keywords.r#move(payload("x")).await),
        ("return", keywords.r#return(payload("x")).await),
        ("type", keywords.r#type(payload("x")).await),
        ("match", keywords.r#match(payload("x")).await),
        ("async", keywords.r#async(payload("x")).await),
        ("Self", keywords.self_(payload("x")).await),
        ("crate", keywords.crate_(payload("x")).await),
        ("New", keywords.new_(payload("x")).await),
        ("IntoInner", keywords.into_inner_(payload("x")).await),
        ("Clone", keywords.clone(payload("x")).await),
        ("Register", keywords.register(payload("x")).await),
        ("Default", keywords.default(payload("x")).await),
        ("Add", keywords.add(payload("x")).await),
        ("Next", keywords.next(payload("x")).await),
        ("ToString", keywords.to_string(payload("x")).await),
        ("IntoVec", keywords.into_vec(payload("x")).await),
        ("AsRef", keywords.as_ref(payload("x")).await),
        ("FromStr", keywords.from_str(payload("x")).await),
    ];
    for (method, reply) in cases {
        assert_eq!(reply.unwrap().text, format!("{method}:x"));
    }
    let options = CallOptions::new().timeout(Duration::from_secs(5)).priority(3);
    let reply = keywords.move_with(payload("y"), options).await.unwrap();
    assert_eq!(reply.get_ref().text, "move:y");
    drop(keywords.into_inner());
    handle.shutdown().await;
}

#[tokio::test]
async fn messages_named_like_prelude_and_volley_types_round_trip() {
    let (handle, client) = serve_all().await;
    let index = n::index_client::IndexClient::new(client.clone());
    let response = index.try_add_lock(n::Request { id: "lock-1".into() }).await.unwrap();
    assert_eq!(response.id, "lock-1");
    let result = index.place_sltp_order(n::Option { value: "sl-tp".into() }).await.unwrap();
    assert!(result.ok);
    let named = index.get_status(n::Status { code: 7 }).await.unwrap();
    assert_eq!(named.name, "code 7");
    let server = index.http_get(n::Server { name: "s".into() }).await.unwrap();
    assert_eq!(server.name, "s");
    assert_eq!(index.spawn(n::Future { at: 9 }).await.unwrap().count, 9);
    let nested = n::volley::Codegen { x: "deep".into() };
    let volley = index.nest(nested.clone()).await.unwrap();
    assert_eq!(volley.codegen, Some(nested));

    let clone = n::Clone {
        kind: n::clone::Kind::Deep as i32,
    };
    let send = n::send_client::SendClient::new(client.clone());
    assert_eq!(send.get(clone).await.unwrap(), clone);
    let request = || n::Request { id: "r".into() };
    let sync = n::sync_client::SyncClient::new(client.clone());
    assert_eq!(sync.get(request()).await.unwrap().id, "sync r");
    let t = n::t_client::TClient::new(client.clone());
    assert_eq!(t.get(request()).await.unwrap().id, "t r");
    let default = n::default_client::DefaultClient::new(client.clone());
    assert!(default.get(request()).await.unwrap().ok);
    let debug = n::debug_client::DebugClient::new(client);
    assert_eq!(debug.get(request()).await.unwrap().value, "r");
    // type_attribute added PartialOrd.
    assert!(n::Request { id: "a".into() } < n::Request { id: "b".into() });
    handle.shutdown().await;
}

#[tokio::test]
async fn the_same_rpc_name_in_many_services_and_packages_routes_separately() {
    let (handle, client) = serve_all().await;
    let request = || n::Request::default();
    let alpha = n::alpha_client::AlphaClient::new(client.clone());
    let beta = n::beta_client::BetaClient::new(client.clone());
    let gamma = n::gamma_client::GammaClient::new(client.clone());
    assert_eq!(alpha.get(request()).await.unwrap().id, "alpha");
    assert_eq!(beta.get(request()).await.unwrap().id, "beta");
    assert_eq!(gamma.get(request()).await.unwrap().id, "gamma");

    let store_a = hazards::alpha::store_client::StoreClient::new(client.clone());
    let store_b = hazards::beta::store_client::StoreClient::new(client);
    let item_a = store_a.get(hazards::alpha::Item { key: "k".into() }).await.unwrap();
    let item_b = store_b.get(hazards::beta::Item { key: "k".into() }).await.unwrap();
    assert_eq!(item_a.key, "alpha:k");
    assert_eq!(item_b.key, "beta:k");
    assert_ne!(hazards::alpha::store_methods::get::ID, hazards::beta::store_methods::get::ID);
    handle.shutdown().await;
}

#[tokio::test]
async fn method_constants_match_the_runtime_ids() {
    use hazards::keywords::keywords_methods as k;
    assert_eq!(k::SERVICE, "hazards.keywords.Keywords");
    assert_eq!(k::r#move::NAME, "/hazards.keywords.Keywords/move");
    assert_eq!(k::r#move::ID, MethodId::from_name("/hazards.keywords.Keywords/move"));
    assert_eq!(k::new_::NAME, "/hazards.keywords.Keywords/New");
    assert_eq!(proto::lonely_methods::ping::NAME, "/Lonely/Ping");
    assert_eq!(proto::lonely_methods::ping::ID, MethodId::from_name("/Lonely/Ping"));
    assert_eq!(n::index_methods::try_add_lock::NAME, "/hazards.names.index/tryAddLock");
    assert_eq!(n::index_methods::place_sltp_order::NAME, "/hazards.names.index/PlaceSLTPOrder");
    // A client calling by id reaches the server that registered by name.
    let (handle, client) = serve_all().await;
    let reply: Payload = client.unary(k::r#type::ID, &payload("raw"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.text, "type:raw");
    handle.shutdown().await;
}

#[tokio::test]
#[allow(deprecated)]
async fn remaining_hazards_round_trip() {
    let (handle, client) = serve_all().await;

    let lonely = proto::lonely_client::LonelyClient::new(client.clone());
    assert_eq!(lonely.ping(proto::Ping { seq: 41 }).await.unwrap().seq, 42);

    let legacy = hazards::proto2::legacy_store_client::LegacyStoreClient::new(client.clone());
    let touched = legacy
        .touch(hazards::proto2::Legacy {
            id: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(touched.count, Some(8), "proto2 default 7, plus one");

    let maybes = hazards::proto3_optional::maybes_client::MaybesClient::new(client.clone());
    let maybe = hazards::proto3_optional::Maybe {
        name: Some("n".into()),
        quantity: None,
        counts: [("a".to_owned(), 1)].into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        blob: Bytes::from_static(b"\x00\x01"),
        choice: Some(hazards::proto3_optional::maybe::Choice::Number(5)),
    };
    assert_eq!(maybes.echo(maybe.clone()).await.unwrap(), maybe);

    let wkt = hazards::well_known::well_known_client::WellKnownClient::new(client.clone());
    wkt.ping(()).await.unwrap();
    let any = prost_types::Any {
        type_url: "type.example/x".into(),
        value: vec![1, 2, 3],
    };
    assert_eq!(wkt.wrap(any).await.unwrap().type_url, "type.example/x#wrapped");
    assert_eq!(wkt.now(()).await.unwrap().seconds, 1_700_000_000);

    let locator = hazards::r#type::r#match::locator_client::LocatorClient::new(client.clone());
    let here = google::r#type::LatLng {
        latitude: 51.5,
        longitude: -0.1,
    };
    let fix = locator.r#where(here).await.unwrap();
    assert_eq!(fix.label, "here");
    assert_eq!(locator.locate(fix).await.unwrap(), here);
    let missing = locator.locate(Default::default()).await.unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);

    let auth = hazards::options::auth_client::AuthClient::new(client.clone());
    let login = hazards::options::Login {
        user: "u".into(),
        password: "p".into(),
    };
    assert_eq!(auth.sign_in(login.clone()).await.unwrap().password, "");
    let old = auth.sign_in_old(login.clone()).await.unwrap_err();
    assert_eq!(old.code(), Code::Unimplemented);
    let old_auth = hazards::options::old_auth_client::OldAuthClient::new(client.clone());
    assert_eq!(old_auth.sign_in(login.clone()).await.unwrap(), login);

    let mixed = hazards::streaming::mixed_client::MixedClient::new(client.clone());
    let tick = hazards::streaming::Tick { seq: 3 };
    assert_eq!(mixed.get(tick).await.unwrap(), tick);

    let pricing = hazards::pricing::pricing_client::PricingClient::new(client.clone());
    let money = Money {
        currency: "EUR".into(),
        units: 21,
    };
    assert_eq!(pricing.quote(money).await.unwrap().units, 42);

    let health = grpc::health::v1::health_client::HealthClient::new(client.clone());
    let check = |service: &str| grpc::health::v1::HealthCheckRequest { service: service.into() };
    let serving = health.check(check("")).await.unwrap();
    assert_eq!(serving.status(), grpc::health::v1::health_check_response::ServingStatus::Serving);
    let unknown = health.check(check("nope")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(health.list(Default::default()).await.unwrap().statuses.is_empty());

    let desk = doc::orders_client::OrdersClient::new(client);
    let order = doc::Order {
        id: "o-1".into(),
        quantity: 3,
        note: b"n".to_vec(),
    };
    let ack = desk.place_order(order).await.unwrap();
    assert!(ack.accepted);
    assert!(!desk.cancel_order(ack).await.unwrap().accepted);
    handle.shutdown().await;
}

#[tokio::test]
async fn generated_clients_run_over_a_channel_too_and_read_response_metadata() {
    let (handle, _client) = serve_all().await;
    let channel = Channel::builder().connect(handle.local_addr()).await.unwrap();
    let health = grpc::health::v1::health_client::HealthClient::new(channel);
    let reply = health
        .check_with(
            grpc::health::v1::HealthCheckRequest::default(),
            CallOptions::new().timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(reply.get_ref().status, 1);
    // The handler's head metadata and trailers arrive with the `_with` method's response.
    assert_eq!(reply.metadata().get_str("x-checked-by"), Some("streams"));
    assert_eq!(reply.trailers().get_str("x-check-cost"), Some("1"));
    // The default type parameter is Channel.
    let _: &grpc::health::v1::health_client::HealthClient = &health;
    handle.shutdown().await;
}

#[tokio::test]
async fn generated_clients_run_over_a_balanced_channel_unchanged() {
    let (first, _a) = serve_all().await;
    let (second, _b) = serve_all().await;
    let channel = Channel::balance_list([first.local_addr().clone(), second.local_addr().clone()]).unwrap();
    let auth = hazards::options::auth_client::AuthClient::new(channel.clone());
    let login = hazards::options::Login {
        user: "u".into(),
        password: "p".into(),
    };
    for _ in 0..20 {
        assert_eq!(auth.sign_in(login.clone()).await.unwrap().password, "");
    }
    let calls: Vec<u64> = channel.endpoints().iter().map(|e| e.calls).collect();
    assert_eq!(calls.iter().sum::<u64>(), 20);
    assert!(calls.iter().all(|&c| c > 0), "both replicas took calls: {calls:?}");
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test]
async fn a_generated_client_from_connect_makes_its_next_call_after_the_server_closed_it_for_idleness() {
    let handle = Server::builder()
        .add_service(hazards::keywords::keywords_server::KeywordsServer::new(Echo))
        .idle_timeout(Some(Duration::from_millis(100)))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let keywords = hazards::keywords::keywords_client::KeywordsClient::connect(handle.local_addr())
        .await
        .unwrap()
        .timeout(Duration::from_secs(5));
    assert_eq!(keywords.r#move(payload("1")).await.unwrap().text, "move:1");
    // Idle past the server's idle timeout: the server closes the connection.
    let closed_by = tokio::time::Instant::now() + Duration::from_secs(5);
    while handle.connections() > 0 {
        assert!(
            tokio::time::Instant::now() < closed_by,
            "the server never closed the idle connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(keywords.r#move(payload("2")).await.unwrap().text, "move:2");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_generated_client_timeout_applies_to_calls_that_set_none() {
    let (handle, client) = serve_all().await;
    let health = grpc::health::v1::health_client::HealthClient::new(client).timeout(Duration::from_nanos(1));
    let status = health.check(grpc::health::v1::HealthCheckRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    // A call's own deadline wins over the client's.
    let reply = health
        .check_with(
            grpc::health::v1::HealthCheckRequest::default(),
            CallOptions::new().timeout(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(reply.get_ref().status, 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn generated_client_futures_are_send_and_clients_move_into_tasks() {
    let (handle, client) = serve_all().await;
    let health = grpc::health::v1::health_client::HealthClient::new(client);
    let task = tokio::spawn({
        let health = health.clone();
        async move { health.check(grpc::health::v1::HealthCheckRequest::default()).await }
    });
    assert_eq!(task.await.unwrap().unwrap().status, 1);
    handle.shutdown().await;
}
