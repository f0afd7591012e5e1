//! The Lua plugin host with real scripts: the bundled policies, wrap-up
//! lists and Messenger adapter, validation on load, and the hostile corpus
//! (tests/hostile/*.lua): every hostile call falls back to the built-in
//! behaviour, is counted with file:line, and other calls and tenants go on.

mod lua_support;

use lua_support::{bundled, cad, spec, view, with_routing};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use switchboard_core::channel::{
    ChannelAdapter, ChannelEvent, HttpRequest, Outbound, OutboundContext, OutboundMessage,
    Received, Verdict,
};
use switchboard_core::lua::{ChannelSpec, Generation, ScriptSpec};
use switchboard_core::routing::{Candidate, RouteDecision, RoutingPolicy};
use switchboard_core::wrapup::WrapUpReasons;

struct Agents {
    ids: Vec<String>,
    skills: Vec<Vec<String>>,
}

impl Agents {
    fn new(skills: &[&[&str]]) -> Agents {
        Agents {
            ids: (0..skills.len()).map(|i| format!("agent{i}")).collect(),
            skills: skills
                .iter()
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .collect(),
        }
    }

    /// Agent i has been idle since 1000 - i: the last one is the longest idle.
    fn candidates(&self) -> Vec<Candidate<'_>> {
        self.ids
            .iter()
            .zip(&self.skills)
            .enumerate()
            .map(|(i, (id, skills))| Candidate {
                id,
                name: id,
                load: 0,
                capacity: 5,
                idle_since: 1000 - i as u64,
                skills,
                stamp: 0,
            })
            .collect()
    }
}

#[test]
fn bundled_scripts_load_and_pass_their_self_tests() {
    for policy in ["longest_idle", "skills", "sticky", "priority"] {
        let mut s = spec(bundled(), Some(&format!("routing/{policy}.lua")));
        s.wrapup = Some("wrapup/en.lua".into());
        s.wrapup_queues
            .insert("billing".into(), "wrapup/fr.lua".into());
        s.channels.insert(
            "messenger".into(),
            ChannelSpec {
                script: "channels/messenger.lua".into(),
                settings: BTreeMap::new(),
            },
        );
        let g = Generation::load(&s, 1, 0).unwrap_or_else(|e| panic!("{policy}: {e:?}"));
        assert_eq!(g.reasons("support")[0].label, "Resolved");
        assert_eq!(g.reasons("billing")[0].label, "Résolu");
    }
}

#[test]
fn bundled_policies_route_as_documented() {
    let agents = Agents::new(&[&["en", "fr"], &["en"], &["en", "vip"]]);
    let c = agents.candidates();
    let none = cad(&[]);
    let load = |p: &str| Generation::load(&spec(bundled(), Some(p)), 3, 0).expect("loads");

    let g = load("routing/longest_idle.lua");
    assert_eq!(
        g.route(&view(&none, None), &c),
        RouteDecision::Agent("agent2".into())
    );
    assert_eq!(g.generation(), 3);

    let g = load("routing/skills.lua");
    let fr = cad(&[("language", "fr")]);
    assert_eq!(
        g.route(&view(&fr, None), &c),
        RouteDecision::Agent("agent0".into())
    );
    let billing = cad(&[("topic", "billing")]);
    assert_eq!(g.entry(&view(&billing, None)), Some("billing".into()));
    assert_eq!(g.entry(&view(&none, None)), None);

    let g = load("routing/sticky.lua");
    assert_eq!(
        g.route(&view(&none, Some("agent1")), &c),
        RouteDecision::Agent("agent1".into())
    );
    assert_eq!(
        g.route(&view(&none, Some("gone")), &c),
        RouteDecision::Agent("agent2".into())
    );

    let g = load("routing/priority.lua");
    let vip = cad(&[("vip", "true")]);
    let ranked = |d: RouteDecision| match d {
        RouteDecision::Ranked(l) => l,
        other => panic!("expected a ranked list, got {other:?}"),
    };
    assert_eq!(ranked(g.route(&view(&vip, None), &c))[0], "agent2");
    assert_eq!(
        ranked(g.route(&view(&none, None), &c)),
        ["agent1", "agent0", "agent2"]
    );
}

#[test]
fn candidates_follow_changes_between_calls() {
    let g = Generation::load(&with_routing(
        "return { route = function(c, cands) local s = '' for i = 1, #cands do s = s .. cands[i].id .. '=' .. cands[i].load .. ';' end return s end }",
    ), 1, 0)
    .expect("loads");
    let agents = Agents::new(&[&[], &[], &[]]);
    let mut c = agents.candidates();
    let none = cad(&[]);
    assert_eq!(
        g.route(&view(&none, None), &c),
        RouteDecision::Agent("agent0=0;agent1=0;agent2=0;".into())
    );
    c[1].load = 4;
    c.remove(0);
    assert_eq!(
        g.route(&view(&none, None), &c),
        RouteDecision::Agent("agent1=4;agent2=0;".into())
    );
    c.reverse();
    assert_eq!(
        g.route(&view(&none, None), &c),
        RouteDecision::Agent("agent2=0;agent1=4;".into())
    );
}

fn load_errors(s: &ScriptSpec) -> Vec<String> {
    match Generation::load(s, 1, 0) {
        Ok(_) => panic!("should not load"),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn broken_scripts_are_refused_with_file_and_line() {
    let e = load_errors(&with_routing("return {\n route = function( end }"));
    assert!(e[0].starts_with("routing/policy.lua:2: "), "{e:?}");
    let e = load_errors(&with_routing("return { entry = function() end }"));
    assert!(e[0].contains("must define route"), "{e:?}");
    let e = load_errors(&with_routing(
        "return { route = function() end,\n tests = { fails = function()\n assert(1 == 2, 'one is not two') end } }",
    ));
    assert_eq!(
        e,
        ["routing/policy.lua:3: self-test fails failed: one is not two"]
    );
    let e = load_errors(&with_routing(
        "local x = require 'nothing_here'\nreturn { route = function() end }",
    ));
    assert!(e[0].contains("module \"nothing_here\" not found"), "{e:?}");
    assert!(e[0].starts_with("routing/policy.lua:1: "), "{e:?}");
}

#[test]
fn wrapup_lists_are_validated() {
    let check = |src: &str| {
        let mut files = bundled();
        files.0.insert("wrapup/x.lua".into(), src.into());
        let mut s = spec(files, None);
        s.wrapup = Some("wrapup/x.lua".into());
        Generation::load(&s, 1, 0)
            .map(|_| ())
            .map_err(|e| e[0].message.clone())
    };
    assert!(check("return { { code = 'a', label = 'A' } }").is_ok());
    assert!(check("return {}")
        .expect_err("refused")
        .contains("non-empty"));
    assert!(
        check("return { { code = 'a', label = 'A' }, { code = 'a', label = 'B' } }")
            .expect_err("refused")
            .contains("appears twice")
    );
    assert!(check("return { { code = 'a' } }")
        .expect_err("refused")
        .contains("code and label"));
    assert!(check("return { reasons = { { code = 'a', label = 'A' } }, queues = { nope = { { code = 'b', label = 'B' } } } }")
        .expect_err("refused")
        .contains("unknown queue"));
}

#[test]
fn canned_responses_are_validated() {
    let check = |src: &str| {
        let mut files = bundled();
        files.0.insert("responses/x.lua".into(), src.into());
        let mut s = spec(files, None);
        s.responses = Some("responses/x.lua".into());
        Generation::load(&s, 1, 0)
            .map(|g| g.responses())
            .map_err(|e| (e[0].file.clone(), e[0].message.clone()))
    };
    let ok = check(
        "return { { code = 'hi', title = 'Hi', text = 'Hello {customer_name}', queues = { 'billing' }, language = 'en' } }",
    )
    .expect("valid");
    assert_eq!(ok.len(), 1);
    assert!(ok[0].applies_to("billing", Some("en")));
    assert!(!ok[0].applies_to("support", None));
    assert!(!ok[0].applies_to("billing", Some("fr")));
    assert_eq!(ok[0].fill("Ann", "Bo", "Billing"), "Hello Ann");
    assert!(check("return { responses = { { code = 'a', title = 'A', text = 'x' } } }").is_ok());
    let err = |src: &str| check(src).expect_err("refused");
    assert_eq!(err("return {}").0, "responses/x.lua");
    assert!(err("return {}").1.contains("list of"));
    assert!(err("return { { code = 'a', title = 'A', text = 'x' }, { code = 'a', title = 'B', text = 'y' } }")
        .1
        .contains("appears twice"));
    assert!(err("return { { code = 'a', title = 'A' } }")
        .1
        .contains("code, title and text"));
    assert!(err("return { { code = 'a', title = ' ', text = 'x' } }")
        .1
        .contains("empty"));
    assert!(
        err("return { { code = 'a', title = 'A', text = 'x', queues = { 'nope' } } }")
            .1
            .contains("unknown queue")
    );
    assert!(
        err("return { { code = 'a', title = 'A', text = 'x', queues = 'billing' } }")
            .1
            .contains("list of queue ids")
    );
    assert!(err("return { { code = 'a', title = 'A', text = 7 } }")
        .1
        .contains("must be a string"));
    let long = format!(
        "return {{ {{ code = 'a', title = 'A', text = string.rep('é', {}) }} }}",
        1001
    );
    assert!(err(&long).1.contains("over 1000 characters"));
    let fits = format!(
        "return {{ {{ code = 'a', title = 'A', text = string.rep('é', {}) }} }}",
        1000
    );
    assert!(check(&fits).is_ok());
    // The bundled lists load.
    for f in ["responses/en.lua", "responses/fr.lua"] {
        let mut s = spec(bundled(), None);
        s.responses = Some(f.into());
        let g = Generation::load(&s, 1, 0).expect(f);
        assert!(g.responses().len() >= 5, "{f}");
    }
}

fn hostile_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("hostile corpus")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn hostile_scripts_fall_back_and_never_stop_the_host() {
    let good = Arc::new(
        Generation::load(&spec(bundled(), Some("routing/longest_idle.lua")), 1, 0)
            .expect("good tenant"),
    );
    let agents = Agents::new(&[&[], &[], &[]]);
    let none = cad(&[]);
    let mut ran = 0;
    for (name, source) in hostile_files() {
        if name == "load_loop.lua" || name == "returns_nil_module.lua" {
            continue;
        }
        eprintln!("hostile: {name}");
        let hostile = Generation::load(&with_routing(&source), 2, 0)
            .unwrap_or_else(|e| panic!("{name} should load: {e:?}"));
        // Another tenant keeps routing on another thread meanwhile.
        let other = good.clone();
        let neighbour = std::thread::spawn(move || {
            let agents = Agents::new(&[&[], &[]]);
            let none = cad(&[]);
            (0..200)
                .map(|_| other.route(&view(&none, None), &agents.candidates()))
                .filter(|d| *d == RouteDecision::Agent("agent1".into()))
                .count()
        });
        for _ in 0..2 {
            let d = hostile.route(&view(&none, None), &agents.candidates());
            assert_eq!(
                d,
                RouteDecision::Fallback,
                "{name}: falls back to the built-in policy"
            );
        }
        assert_eq!(
            neighbour.join().expect("neighbour thread"),
            200,
            "{name}: the other tenant was served"
        );
        let report = hostile.report();
        let r = report
            .iter()
            .find(|r| r.file == "routing/policy.lua")
            .expect("report");
        assert_eq!((r.calls, r.errors), (2, 2), "{name}: {r:?}");
        let last = &r.last_errors[1];
        assert!(!last.message.is_empty(), "{name}");
        for f in &r.last_errors {
            assert_eq!(f.file, "routing/policy.lua", "{name}: {f:?}");
            let line = f.line.unwrap_or_else(|| panic!("{name}: no line in {f:?}"));
            let lines = source.lines().count() as u32;
            assert!(
                (1..=lines).contains(&line),
                "{name}: line {line} of {lines}"
            );
        }
        ran += 1;
    }
    assert!(ran >= 35, "the corpus ran ({ran})");
}

#[test]
fn hostile_kinds_are_told_apart() {
    let kind = |file: &str| {
        let source = hostile_files()
            .into_iter()
            .find(|(n, _)| n == file)
            .expect("file")
            .1;
        let g = Generation::load(&with_routing(&source), 2, 0).expect("loads");
        let agents = Agents::new(&[&[]]);
        g.route(&view(&cad(&[]), None), &agents.candidates());
        let r = g
            .report()
            .into_iter()
            .find(|r| r.file == "routing/policy.lua")
            .expect("report");
        let f = r.last_errors[0].clone();
        (f.kind, f.line, f.message)
    };
    assert_eq!(kind("loop.lua").0, "timeout");
    assert_eq!(kind("loop.lua").1, Some(3), "the line the loop is on");
    assert_eq!(kind("pcall_swallow.lua").0, "timeout");
    assert_eq!(kind("coroutine_loop.lua").0, "timeout");
    assert_eq!(kind("table_growth.lua").0, "memory");
    assert_eq!(kind("returns_number.lua").0, "shape");
    let (k, _, m) = kind("rep_find_bomb.lua");
    assert_eq!(k, "error");
    assert!(m.contains("pattern too costly"), "{m}");
    assert!(kind("io_open.lua").2.contains("nil"), "io is not there");
    // The line that called the host function, allocated or raised.
    let at = |f: &str| kind(f).1;
    assert_eq!(at("rep_find_bomb.lua"), Some(3), "string.find's caller");
    assert_eq!(at("rep_gsub_bomb.lua"), Some(4), "string.gsub's caller");
    assert_eq!(
        at("match_bomb.lua"),
        Some(3),
        "the helper calling string.match"
    );
    assert_eq!(at("rep_huge.lua"), Some(3), "string.rep's caller");
    assert_eq!(at("require_missing.lua"), Some(3), "require's caller");
    assert_eq!(at("require_escape.lua"), Some(3));
    assert_eq!(at("error_table.lua"), Some(3), "error with a table");
    assert_eq!(at("gc_finalizer_loop.lua"), Some(3), "the refused __gc");
    assert_eq!(at("table_growth.lua"), Some(5), "the allocating line");
    assert_eq!(at("concat_growth.lua"), Some(4), "the allocating line");
    assert_eq!(kind("concat_growth.lua").0, "memory");
    // Shape errors: the line of the `return` that returned the value.
    let (k, line, m) = kind("returns_agent_table.lua");
    assert_eq!((k, line), ("shape", Some(3)), "{m}");
    assert!(m.contains("key"), "{m}");
    let (k, line, _) = kind("returns_number.lua");
    assert_eq!((k, line), ("shape", Some(3)));
    assert_eq!(at("returns_candidates.lua"), Some(3));
    assert_eq!(kind("returns_candidates.lua").0, "shape");
}

#[test]
fn hostile_load_time_code_is_refused() {
    let src = |n: &str| {
        hostile_files()
            .into_iter()
            .find(|(f, _)| f == n)
            .expect("file")
            .1
    };
    let e = load_errors(&with_routing(&src("load_loop.lua")));
    assert_eq!(e, ["routing/policy.lua:2: instruction budget exceeded"]);
    let e = load_errors(&with_routing(&src("returns_nil_module.lua")));
    assert!(e[0].contains("must define route"), "{e:?}");
}

#[test]
fn route_returning_nil_keeps_the_conversation_queued() {
    let g =
        Generation::load(&with_routing("function route() return nil end"), 1, 0).expect("loads");
    let agents = Agents::new(&[&[]]);
    assert_eq!(
        g.route(&view(&cad(&[]), None), &agents.candidates()),
        RouteDecision::KeepQueued
    );
    assert_eq!(g.report()[0].errors, 0);
}

/// `sb.json.decode` as adapters use it on webhook bodies: every JSON type,
/// the last of duplicate keys, `null` as nil, integers kept integers, and
/// a clear error (raised, so `pcall` sees it) for a cut or trailing text.
#[test]
fn json_decode_gives_lua_values_and_clear_errors() {
    let policy = r#"
function route(conversation, candidates)
  local v = sb.json.decode('{"a":[1,2.5,{"b":null,"c":"é\\u00e9"}],"t":true,"k":1,"k":2,"s":"x\\ny"}')
  local ok = type(v.a) == "table" and #v.a == 3
    and math.type(v.a[1]) == "integer" and v.a[1] == 1 and v.a[2] == 2.5
    and v.a[3].b == nil and v.a[3].c == "\u{e9}\u{e9}"
    and v.t == true and v.k == 2 and v.s == "x\ny"
  local cut_ok, cut = pcall(sb.json.decode, '{"x": [1, 2')
  local trailing_ok, trailing = pcall(sb.json.decode, '{} x')
  ok = ok and not cut_ok and not trailing_ok
    and tostring(cut):find("sb.json.decode: ", 1, true) ~= nil
    and tostring(cut):find("line 1", 1, true) ~= nil
    and tostring(trailing):find("trailing characters", 1, true) ~= nil
  if ok then return "agent0" end
  error("decoded: " .. tostring(v.k) .. " " .. tostring(v.a[3].c) .. " cut: " .. tostring(cut) .. " trailing: " .. tostring(trailing))
end
"#;
    let g = Generation::load(&with_routing(policy), 1, 0).expect("loads");
    let agents = Agents::new(&[&[], &[]]);
    assert_eq!(
        g.route(&view(&cad(&[]), None), &agents.candidates()),
        RouteDecision::Agent("agent0".into()),
        "{:?}",
        g.report()
    );
    assert_eq!(g.report()[0].errors, 0);
}

fn messenger() -> Generation {
    let mut s = spec(bundled(), None);
    let settings: BTreeMap<String, String> = [
        ("verify_token", "vt"),
        ("page_id", "1000"),
        ("page_name", "Demo Page"),
        ("access_token", "tok"),
        ("graph_api_base", "http://127.0.0.1:9"),
        ("graph_api_version", "v21.0"),
        ("human_agent_tag", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    s.channels.insert(
        "messenger".into(),
        ChannelSpec {
            script: "channels/messenger.lua".into(),
            settings,
        },
    );
    Generation::load(&s, 1, 0).expect("messenger loads")
}

fn get(query: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A webhook's `verify` and `inbound` run in one call of the script, with
/// the same request table: what `verify` found is there for `inbound`, a
/// refusal in `verify` is the answer, and each webhook counts once.
#[test]
fn a_webhook_is_verified_and_parsed_in_one_call() {
    let mut files = bundled();
    files.0.insert(
        "channels/gate.lua".into(),
        r#"
local M = {}
function M.verify(request, ctx)
  if request.headers["x-key"] ~= ctx.settings.key then
    return { status = 401, body = "no key" }
  end
  request.checked = true
  return nil
end
function M.inbound(request, ctx)
  local text = request.checked and "checked" or "unchecked"
  return { events = { { type = "message", customer = "c1", text = text } },
           response = { status = 200, body = "ok" } }
end
function M.outbound(message, ctx) return { refuse = "not here" } end
return M
"#
        .into(),
    );
    let mut s = spec(files, None);
    s.channels.insert(
        "gate".into(),
        ChannelSpec {
            script: "channels/gate.lua".into(),
            settings: [("key".to_string(), "k1".to_string())]
                .into_iter()
                .collect(),
        },
    );
    let g = Generation::load(&s, 1, 0).expect("loads");
    let gate = g.channel("gate").expect("adapter");
    let post = |key: &str| HttpRequest {
        method: "POST".into(),
        headers: [("x-key".to_string(), key.to_string())]
            .into_iter()
            .collect(),
        body: b"{}".to_vec(),
        ..Default::default()
    };
    match gate.receive(&post("wrong")).expect("receive") {
        Received::Answer(r) => assert_eq!((r.status, r.body.as_str()), (401, "no key")),
        other => panic!("a refusal expected, got {other:?}"),
    }
    match gate.receive(&post("k1")).expect("receive") {
        Received::Messages(inbound) => {
            let texts: Vec<&str> = inbound
                .events
                .iter()
                .map(|ChannelEvent::Message(m)| m.text.as_str())
                .collect();
            assert_eq!(texts, ["checked"]);
        }
        other => panic!("messages expected, got {other:?}"),
    }
    let report = g.report();
    let calls = report
        .iter()
        .find(|r| r.file == "channels/gate.lua")
        .map(|r| (r.calls, r.errors));
    assert_eq!(calls, Some((2, 0)));
}

#[test]
fn messenger_handshake() {
    let g = messenger();
    let m = g.channel("messenger").expect("adapter");
    let ok = m
        .verify(&get(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "vt"),
            ("hub.challenge", "42"),
        ]))
        .expect("verify");
    assert!(matches!(ok, Verdict::Respond(r) if r.status == 200 && r.body == "42"));
    let bad = m
        .verify(&get(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", "no"),
            ("hub.challenge", "42"),
        ]))
        .expect("verify");
    assert!(matches!(bad, Verdict::Respond(r) if r.status == 403));
}

#[test]
fn messenger_inbound_normalizes_batched_events() {
    let g = messenger();
    let m = g.channel("messenger").expect("adapter");
    let body = serde_json::json!({"object": "page", "entry": [
        {"id": "1000", "time": 1, "messaging": [
            {"sender": {"id": "p1"}, "recipient": {"id": "1000"}, "timestamp": 5, "message": {"mid": "m1", "text": "hello"}},
            {"sender": {"id": "1000"}, "recipient": {"id": "p1"}, "timestamp": 6, "message": {"mid": "m2", "text": "echo", "is_echo": true}},
            {"sender": {"id": "p1"}, "recipient": {"id": "1000"}, "timestamp": 7, "delivery": {"mids": ["m2"], "watermark": 6}},
            {"sender": {"id": "p1"}, "recipient": {"id": "1000"}, "timestamp": 8, "read": {"watermark": 6}}
        ]},
        {"id": "1000", "time": 2, "messaging": [
            {"sender": {"id": "p2"}, "recipient": {"id": "1000"}, "timestamp": 9, "message": {"mid": "m3", "attachments": [{"type": "image", "payload": {"url": "https://x"}}]}},
            {"sender": {"id": "p3"}, "recipient": {"id": "1000"}, "timestamp": 10, "postback": {"title": "Talk to sales", "payload": "SALES"}}
        ]}
    ]});
    let req = HttpRequest {
        method: "POST".into(),
        body: body.to_string().into_bytes(),
        ..Default::default()
    };
    let inbound = m.inbound(&req).expect("inbound");
    assert_eq!(inbound.response.status, 200);
    let got: Vec<(String, String)> = inbound
        .events
        .iter()
        .map(|ChannelEvent::Message(m)| (m.customer.clone(), m.text.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("p1".into(), "hello".into()),
            ("p2".into(), "[image]".into()),
            ("p3".into(), "Talk to sales".into())
        ]
    );
}

#[test]
fn messenger_outbound_follows_meta_windows() {
    let g = messenger();
    let m = g.channel("messenger").expect("adapter");
    let msg = OutboundMessage {
        conversation: 1,
        customer: "p1".into(),
        author: "alice".into(),
        text: "Hi".into(),
    };
    let hour = 3_600_000;
    let now = 100 * 24 * hour;
    let at = |age: u64| {
        m.outbound(
            &msg,
            &OutboundContext {
                now,
                last_customer_message_at: Some(now - age),
            },
        )
        .expect("outbound")
    };
    let Outbound::Send(r) = at(hour) else {
        panic!("sends")
    };
    assert_eq!(
        r.url,
        "http://127.0.0.1:9/v21.0/me/messages?access_token=tok"
    );
    assert_eq!(
        r.body,
        serde_json::json!({"recipient": {"id": "p1"}, "messaging_type": "RESPONSE", "message": {"text": "Hi"}})
    );
    let Outbound::Send(r) = at(3 * 24 * hour) else {
        panic!("sends")
    };
    assert_eq!(r.body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(r.body["tag"], "HUMAN_AGENT");
    assert!(matches!(at(8 * 24 * hour), Outbound::Refuse(_)));
}

#[test]
fn shape_errors_point_at_the_return_that_returned_the_value() {
    let failure = |src: &str| {
        let g = Generation::load(&with_routing(src), 1, 0).expect("loads");
        let agents = Agents::new(&[&[]]);
        g.route(&view(&cad(&[]), None), &agents.candidates());
        let r = g
            .report()
            .into_iter()
            .find(|r| r.file == "routing/policy.lua")
            .expect("report");
        let f = r.last_errors[0].clone();
        (f.kind, f.line)
    };
    // The one `return` with a value, after a nested function's own
    // returns and a bare `return`.
    let src = "return { route = function(c, cands)\n\
               \x20 local function pick() return 'x' end\n\
               \x20 if c.queue == 'nowhere' then return end\n\
               \x20 local t = { agent = pick() }\n\
               \x20 return t\n\
               end }\n";
    assert_eq!(failure(src), ("shape", Some(5)));
    // A tail call counts as a return.
    let src = "local function bad() return 42 end\n\
               return { route = function(c, cands)\n\
               \x20 return bad()\n\
               end }\n";
    assert_eq!(failure(src), ("shape", Some(3)));
    // Two returns with values: which one ran is unknown, so the line where
    // the function is defined.
    let src = "return { route = function(c, cands)\n\
               \x20 if c.queue == 'nowhere' then return 1 end\n\
               \x20 return 2\n\
               end }\n";
    assert_eq!(failure(src), ("shape", Some(1)));
}

/// An agent's configuration replaced in the very memory the previous one
/// used (what the allocator may do when an admin edits or re-creates an
/// agent between two decisions): the policy sees the new skills, because
/// the configuration's stamp changed, though every address is the same.
#[test]
fn a_configuration_replaced_in_the_same_memory_is_seen_afresh() {
    let g = Generation::load(
        &with_routing(
            "return { route = function(c, candidates)\n  if candidates[1].skill.fr then return candidates[1].id end\n  return nil\nend }\n",
        ),
        1,
        0,
    )
    .expect("loads");
    let none = cad(&[]);
    let mut skills = vec!["en".to_string()];
    let decide = |skills: &[String], stamp: u64| {
        let c = [Candidate {
            id: "a1",
            name: "Ann",
            load: 0,
            capacity: 1,
            idle_since: 5,
            skills,
            stamp,
        }];
        g.route(&view(&none, None), &c)
    };
    assert_eq!(decide(&skills, 7), RouteDecision::KeepQueued);
    // The same buffer, other text: only the stamp tells.
    let before = skills.as_ptr();
    skills[0].replace_range(.., "fr");
    assert_eq!(skills.as_ptr(), before);
    assert_eq!(decide(&skills, 8), RouteDecision::Agent("a1".into()));
}

/// The same for the id: another agent's id written where the previous
/// one's was (same address and length) is the other agent, by its stamp.
#[test]
fn an_id_replaced_in_the_same_memory_is_another_agent() {
    let g = Generation::load(
        &with_routing("return { route = function(c, candidates) return candidates[1].id end }\n"),
        1,
        0,
    )
    .expect("loads");
    let none = cad(&[]);
    let mut id = String::from("a1");
    let decide = |id: &str, stamp: u64| {
        let c = [Candidate {
            id,
            name: "Agent",
            load: 0,
            capacity: 1,
            idle_since: 5,
            skills: &[],
            stamp,
        }];
        g.route(&view(&none, None), &c)
    };
    assert_eq!(decide(&id, 7), RouteDecision::Agent("a1".into()));
    let before = id.as_ptr();
    id.replace_range(.., "a2");
    assert_eq!(id.as_ptr(), before);
    assert_eq!(decide(&id, 8), RouteDecision::Agent("a2".into()));
}

/// `sb.version` is the newest version label of the Lua reference, so a
/// script can tell what it may use (it said 0.1.0 while the page labelled
/// entries up to 0.4.0).
#[test]
fn sb_version_is_the_newest_api_in_the_docs() {
    let docs =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/lua.md"))
            .expect("docs/lua.md");
    let newest = docs
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let label = l.rsplit_once('(')?.1.strip_suffix(')')?;
            let parts: Vec<u32> = label
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            (parts.len() == 3).then_some(parts)
        })
        .max()
        .expect("version labels");
    let newest = format!("{}.{}.{}", newest[0], newest[1], newest[2]);
    let policy = format!(
        "function route(conversation, candidates)\n  if sb.version == {newest:?} then return \"agent0\" end\n  error(\"sb.version is \" .. sb.version)\nend\n"
    );
    routes_to_agent0(&policy);
}

/// The tables inside `sb` are read-only like `sb` itself: a routing
/// script cannot patch `sb.json.decode` or `sb.log` for the adapter of its
/// tenant (or for its own later calls).
#[test]
fn the_tables_inside_sb_are_read_only() {
    let policy = r#"
function route(conversation, candidates)
  local patched = {}
  for _, write in ipairs({
    function() sb.json.decode = function() return {} end end,
    function() sb.json.encode = nil end,
    function() sb.log.info = function() end end,
    function() sb.pick.longest_idle = nil end,
    function() rawset(sb.json, "decode", nil) end,
  }) do
    if pcall(write) then patched[#patched + 1] = "yes" end
  end
  if #patched == 0 and type(sb.json.decode) == "function" then return "agent0" end
  error(#patched .. " writes went through")
end
"#;
    routes_to_agent0(policy);
}

/// `policy` loads and sends a conversation to `agent0` (it raises an error
/// saying what went wrong otherwise).
fn routes_to_agent0(policy: &str) {
    let g = Generation::load(&with_routing(policy), 1, 0).expect("loads");
    let agents = Agents::new(&[&[]]);
    assert_eq!(
        g.route(&view(&cad(&[]), None), &agents.candidates()),
        RouteDecision::Agent("agent0".into()),
        "{:?}",
        g.report()
    );
}
