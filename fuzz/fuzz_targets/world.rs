//! The catalog and server the DNS fuzz targets query: a small zone with tags, regions, weights,
//! an answer limit and an IPv6 instance; client regions, cookies and an NSID configured, so
//! that every option changes what is answered.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use signpost::dns::{Cookies, FastTable, Handler, Regions, Settings, Zone};
use signpost::registry::{Change, Defaults, Registry, State};

const ZONE: &str = r#"
[[service]]
name = "web"
tags = ["v1"]
region = "eu"

[[service.instance]]
id = "web-1"
address = "10.0.0.1"
port = 80
meta = { version = "1" }

[[service.instance]]
id = "web-2"
address = "2001:db8::2"
port = 81
weight = 3
region = "us"

[[service]]
name = "db"
answer_limit = 1

[[service.instance]]
id = "db-1"
address = "10.1.0.1"
port = 5432
"#;

pub struct World {
    pub rt: tokio::runtime::Runtime,
    pub handler: Handler,
    pub fast: Arc<arc_swap::ArcSwapOption<FastTable>>,
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut state = State::new();
        let file = signpost::zones::parse(Path::new("z.toml"), ZONE).unwrap();
        state.apply(Change::ZoneFile(file)).unwrap();
        let zone =
            Zone::new(hickory_proto::rr::Name::from_ascii("local").unwrap(), vec!["127.0.0.1".parse().unwrap()], 5, 1);
        let settings = Arc::new(Settings {
            regions: Regions::new(vec![("10.8.0.0/16".parse().unwrap(), "eu".into())], Some("us".into())),
            cookies: Cookies::new([5; 16]),
            nsid: Some(b"fuzz".as_slice().into()),
            ..Settings::new(zone)
        });
        let (registry, _writer) = rt.block_on(async {
            Registry::start(
                state,
                Defaults::default(),
                Box::new(signpost::store::NoStore),
                Box::new(|_| {}),
                tokio_util::sync::CancellationToken::new(),
            )
        });
        let fast = FastTable::build(registry.snapshot(), settings.clone());
        let handler = Handler::new(registry, Arc::new(arc_swap::ArcSwap::new(settings)));
        World { rt, handler, fast: Arc::new(arc_swap::ArcSwapOption::from_pointee(fast)) }
    })
}
