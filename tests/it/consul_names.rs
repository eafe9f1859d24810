//! `[dns] consul_names`: the README's "Moving from Consul" configuration and digs, run as
//! written against a server serving the `consul` domain, and the same names refused without it.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::json;

use crate::api::register;
use crate::cli::readme_block;
use crate::dig::dig;
use crate::support::*;

/// web-1 (v1) and web-2 (v2), registered as a Consul client would.
async fn web(s: &TestServer) {
    register(s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Tags": ["v1"]})).await;
    register(s, json!({"Name": "web", "ID": "web-2", "Address": "10.0.0.2", "Port": 81, "Tags": ["v2"]})).await;
}

#[tokio::test]
async fn the_readme_consul_digs_answer_as_consul_would() {
    let config = readme_block("toml", "consul_names = true");
    let s = server().config(&config).start().await;
    web(&s).await;
    let digs = readme_block("sh", "web.service.dc1.consul");
    let mut lines = digs.lines().filter(|l| l.starts_with("dig @127.0.0.1"));
    let mut run = async |want: &[&str]| {
        let line = lines.next().expect("the README has one dig per expectation");
        let mut got: Vec<String> =
            dig(&s, &line.split_whitespace().skip(2).collect::<Vec<_>>()).await.lines().map(str::to_string).collect();
        got.sort();
        assert_eq!(got, want, "{line}");
    };
    run(&["10.0.0.1", "10.0.0.2"]).await;
    run(&["10.0.0.1"]).await;
    run(&["10.0.0.1", "10.0.0.2"]).await;
    run(&["1 1 80 web-1.instance.consul.", "1 1 81 web-2.instance.consul."]).await;
    assert!(lines.next().is_none());
}

#[tokio::test]
async fn without_consul_names_a_datacenter_is_a_region() {
    let s = server().config("[dns]\ndomain = \"consul\"\n").start().await;
    web(&s).await;
    let answered = |m: hickory_proto::op::Message| (m.metadata.response_code, addresses(&m).len());
    assert_eq!(answered(s.udp("web.service.consul.", RecordType::A).await), (ResponseCode::NoError, 2));
    // No instance is in a region `dc1`, and `.dc` is no label of ours.
    assert_eq!(answered(s.udp("web.service.dc1.consul.", RecordType::A).await), (ResponseCode::NXDomain, 0));
    assert_eq!(answered(s.udp("web.service.dc1.dc.consul.", RecordType::A).await), (ResponseCode::NXDomain, 0));
}

#[tokio::test]
async fn with_a_region_the_datacenter_is_that_region() {
    let s = server().config("[dns]\ndomain = \"consul\"\nconsul_names = true\nregion = \"eu\"\n").start().await;
    register(&s, json!({"Name": "web", "ID": "web-1", "Address": "10.0.0.1", "Port": 80, "Meta": {"region": "eu"}}))
        .await;
    register(&s, json!({"Name": "web", "ID": "web-2", "Address": "10.0.0.2", "Port": 80, "Meta": {"region": "us"}}))
        .await;
    for (name, want) in [
        ("web.service.eu.consul.", vec!["10.0.0.1"]),
        ("web.service.eu.dc.consul.", vec!["10.0.0.1"]),
        ("web.service.us.dc.consul.", vec!["10.0.0.2"]),
    ] {
        for m in [s.udp(name, RecordType::A).await, s.tcp(name, RecordType::A).await] {
            assert_eq!(addresses(&m), want, "{name}");
        }
    }
    let m = s.udp("web.service.dc1.consul.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "dc1 is not this server's datacenter");
}
