//! Rotation: answers for one name and type rotate per query, by weight (smooth weighted
//! round-robin), independently per name and type; `answer_limit` cuts A/AAAA after rotating.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

use crate::support::*;

/// A service of `n` instances `<name>-1..n` at 10.0.<net>.1..n, tagged `t`, with `weights`
/// (1 when absent) and extra service-level keys.
fn service(name: &str, net: u8, weights: &[u32], extra: &str) -> String {
    let mut z = format!("[[service]]\nname = \"{name}\"\ntags = [\"t\"]\n{extra}\n");
    for (i, w) in weights.iter().enumerate() {
        let i = i + 1;
        z += &format!(
            "[[service.instance]]\nid = \"{name}-{i}\"\naddress = \"10.0.{net}.{i}\"\nport = {}\nweight = {w}\n",
            8000 + i
        );
    }
    z
}

/// What each answer record names, in order: the address, the SRV target's id, or the TXT id.
fn order(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            RData::SRV(s) => {
                s.target.iter().next().map(|l| String::from_utf8_lossy(l).into_owned()).unwrap_or_default()
            }
            RData::TXT(t) => String::from_utf8_lossy(&t.txt_data[0]).into_owned(),
            other => panic!("unexpected record {other:?}"),
        })
        .collect()
}

/// Asks `name`/`qtype` once, alternating UDP and TCP (they share the rotation), and returns
/// the answer's order.
async fn ask(s: &TestServer, name: &str, qtype: RecordType, k: usize) -> Vec<String> {
    let t = if k.is_multiple_of(2) { Transport::Udp } else { Transport::Tcp };
    let m = query(s.dns, t, &Ask::new(name, qtype)).await;
    assert!(!m.answers.is_empty(), "{name} {qtype}");
    order(&m)
}

/// Asserts that `next` is `prev` rotated left by one: the rotation advanced exactly one step.
fn assert_one_step(prev: &[String], next: &[String], what: &str) {
    let mut want = prev.to_vec();
    want.rotate_left(1);
    assert_eq!(next, want, "{what}: {prev:?} must be followed by its rotation by one");
}

fn counts(firsts: &[String]) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for f in firsts {
        *c.entry(f.clone()).or_default() += 1;
    }
    c
}

#[tokio::test]
async fn equal_weights_put_each_instance_first_once_per_round() {
    for n in [3u8, 5] {
        let zone = service("r", n, &vec![1; usize::from(n)], "");
        let s = server().zone("r.toml", &zone).start().await;
        let all: BTreeSet<String> = (1..=n).map(|i| format!("10.0.{n}.{i}")).collect();
        let mut firsts = Vec::new();
        let mut prev: Option<Vec<String>> = None;
        for k in 0..100 * usize::from(n) {
            let got = ask(&s, "r.service.local.", RecordType::A, k).await;
            assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), all, "every answer holds every address");
            if let Some(p) = &prev {
                assert_one_step(p, &got, &format!("N={n} query {k}"));
            }
            firsts.push(got[0].clone());
            prev = Some(got);
        }
        for round in firsts.chunks(usize::from(n)) {
            assert_eq!(round.iter().cloned().collect::<BTreeSet<_>>(), all, "N={n}: each first once per round");
        }
        assert_eq!(counts(&firsts), all.iter().map(|a| (a.clone(), 100)).collect(), "N={n}");
    }
}

#[tokio::test]
async fn rotation_is_per_name_and_type() {
    let s = server().zone("r.toml", &service("r", 3, &[1, 1, 1], "")).start().await;
    // Interleave several names and types; each must advance by exactly one step per own query.
    let streams = [
        ("r.service.local.", RecordType::A),
        ("r.service.local.", RecordType::SRV),
        ("t.r.service.local.", RecordType::A),
        ("_r._tcp.service.local.", RecordType::SRV),
        ("r.service.local.", RecordType::TXT),
    ];
    let mut prev: Vec<Option<Vec<String>>> = vec![None; streams.len()];
    for k in 0..12 {
        // Uneven interleaving: stream i is asked (i + 1) times per round.
        for (i, &(name, qtype)) in streams.iter().enumerate() {
            for _ in 0..=i {
                let got = ask(&s, name, qtype, k).await;
                if let Some(p) = &prev[i] {
                    assert_one_step(p, &got, &format!("{name} {qtype} round {k}"));
                }
                prev[i] = Some(got);
            }
        }
    }
}

/// Regression: `_<name>._tcp` shared the plain name's SRV counter, so two clients asking the two
/// names in turn each always got the same instance first.
#[tokio::test]
async fn rfc2782_srv_name_rotates_apart_from_the_plain_name() {
    let s = server().zone("r.toml", &service("r", 2, &[1, 1], "")).start().await;
    let (mut plain, mut rfc) = (Vec::new(), Vec::new());
    for k in 0..4 {
        plain.push(ask(&s, "r.service.local.", RecordType::SRV, k).await[0].clone());
        rfc.push(ask(&s, "_r._tcp.service.local.", RecordType::SRV, k).await[0].clone());
    }
    for firsts in [&plain, &rfc] {
        assert_eq!(firsts[0], firsts[2], "{firsts:?}");
        assert_eq!(firsts[1], firsts[3], "{firsts:?}");
        assert_ne!(firsts[0], firsts[1], "{firsts:?}: each name must alternate");
    }
}

#[tokio::test]
async fn question_case_does_not_split_a_rotation() {
    let s = server().zone("r.toml", &service("r", 3, &[1, 1, 1], "")).start().await;
    let mut prev = ask(&s, "r.service.local.", RecordType::A, 0).await;
    for (k, name) in ["R.service.local.", "r.SERVICE.local.", "r.service.LOCAL.", "r.service.local."].iter().enumerate()
    {
        let got = ask(&s, name, RecordType::A, k).await;
        assert_one_step(&prev, &got, name);
        prev = got;
    }
}

#[tokio::test]
async fn weights_give_exact_spread_out_shares() {
    let s = server().zone("w.toml", &service("w", 7, &[5, 1, 1], "")).start().await;
    let (heavy, light) = ("10.0.7.1", ["10.0.7.2", "10.0.7.3"]);
    for k in [1, 4] {
        let mut firsts = Vec::new();
        for q in 0..7 * k {
            firsts.push(ask(&s, "w.service.local.", RecordType::A, q).await[0].clone());
        }
        let want: BTreeMap<String, usize> =
            [(heavy.to_string(), 5 * k), (light[0].to_string(), k), (light[1].to_string(), k)].into();
        assert_eq!(counts(&firsts), want, "over {} queries", 7 * k);
        for pair in firsts.windows(2) {
            assert!(!(light.contains(&pair[0].as_str()) && light.contains(&pair[1].as_str())), "{firsts:?}");
        }
    }
    // SRV rotates by weight too, on its own counter, and carries the weights.
    let mut firsts = Vec::new();
    for q in 0..14 {
        let m = query(s.dns, Transport::Udp, &Ask::new("w.service.local.", RecordType::SRV)).await;
        if q == 0 {
            let mut got = lines(&m.answers);
            got.sort();
            assert_eq!(
                got,
                [
                    "w.service.local. 5 IN SRV 1 1 8002 w-2.instance.local.",
                    "w.service.local. 5 IN SRV 1 1 8003 w-3.instance.local.",
                    "w.service.local. 5 IN SRV 1 5 8001 w-1.instance.local.",
                ]
            );
        }
        firsts.push(order(&m)[0].clone());
    }
    let want: BTreeMap<String, usize> = [("w-1".into(), 10), ("w-2".into(), 2), ("w-3".into(), 2)].into();
    assert_eq!(counts(&firsts), want);
}

/// Checks `limit`-record A answers over `n` queries: each address first exactly once, and each
/// answer is the rotated order cut (its records are consecutive in the rotation, so the second
/// record of one answer is the first of the next).
async fn assert_limited(s: &TestServer, name: &str, n: u8, net: u8, limit: usize) {
    let all: BTreeSet<String> = (1..=n).map(|i| format!("10.0.{net}.{i}")).collect();
    let answers: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for k in 0..usize::from(n) {
            v.push(ask(s, name, RecordType::A, k).await);
        }
        v
    };
    for a in &answers {
        assert_eq!(a.len(), limit, "{name}: {a:?}");
        assert!(a.iter().all(|x| all.contains(x)), "{name}: {a:?}");
        assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), limit, "{name}: distinct {a:?}");
    }
    let firsts: BTreeSet<String> = answers.iter().map(|a| a[0].clone()).collect();
    assert_eq!(firsts, all, "{name}: each address first exactly once over {n} queries");
    if limit > 1 {
        for pair in answers.windows(2) {
            assert_eq!(pair[0][1], pair[1][0], "{name}: {answers:?} is not the rotated order cut");
        }
    }
}

#[tokio::test]
async fn global_answer_limit_cuts_a_after_rotating() {
    let zone = service("a", 3, &[1, 1, 1], "") + &service("b", 5, &[1; 5], "");
    let s = server().zone("l.toml", &zone).config("[dns]\nanswer_limit = 1\n").start().await;
    assert_limited(&s, "a.service.local.", 3, 3, 1).await;
    assert_limited(&s, "b.service.local.", 5, 5, 1).await;
    assert_limited(&s, "t.b.service.local.", 5, 5, 1).await;
    for t in [Transport::Udp, Transport::Tcp] {
        let m = query(s.dns, t, &Ask::new("b.service.local.", RecordType::SRV)).await;
        assert_eq!(m.answers.len(), 5, "{t:?}: answer_limit does not cut SRV");
        assert_eq!(m.additionals.len(), 5, "{t:?}: nor its glue");
        let m = query(s.dns, t, &Ask::new("b.service.local.", RecordType::TXT)).await;
        assert_eq!(m.answers.len(), 5, "{t:?}: answer_limit does not cut TXT");
    }
}

#[tokio::test]
async fn per_service_answer_limit_in_a_zone_file() {
    let zone = service("lim", 3, &[1, 1, 1], "answer_limit = 2") + &service("free", 4, &[1; 4], "");
    let s = server().zone("l.toml", &zone).start().await;
    assert_limited(&s, "lim.service.local.", 3, 3, 2).await;
    assert_limited(&s, "free.service.local.", 4, 4, 4).await;
    let m = s.udp("lim.service.local.", RecordType::SRV).await;
    assert_eq!(m.answers.len(), 3, "answer_limit does not cut SRV");
    // A weighted, limited service: the cut follows the weighted first place.
    let zone = service("wl", 9, &[5, 1, 1], "answer_limit = 1");
    let s = server().zone("wl.toml", &zone).start().await;
    let mut firsts = Vec::new();
    for k in 0..7 {
        let a = ask(&s, "wl.service.local.", RecordType::A, k).await;
        assert_eq!(a.len(), 1);
        firsts.push(a[0].clone());
    }
    let want: BTreeMap<String, usize> = [("10.0.9.1".into(), 5), ("10.0.9.2".into(), 1), ("10.0.9.3".into(), 1)].into();
    assert_eq!(counts(&firsts), want);
}
