//! The native host with the workspace's Rust plugins: skills-router gives
//! the answers of `scripts/routing/skills.lua` on the same inputs, the SMS
//! adapter turns real Twilio webhooks into events and agent messages into
//! the exact Twilio request, and the test plugin's panics and bad answers
//! are contained, counted and reported.

mod native_support;

use native_support::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use switchboard_core::channel::{
    ChannelAdapter, ChannelEvent, HttpRequest, HttpResponse, InboundMessage, Outbound,
    OutboundContext, OutboundMessage, OutgoingRequest, Verdict,
};
use switchboard_core::lua::{Generation, Limits, ScriptFiles, ScriptSpec};
use switchboard_core::masking::Masker;
use switchboard_core::native::{ErrorKind, NativePlugin, NativeSpec, TRUSTED_CODE_NOTE};
use switchboard_core::routing::{Candidate, RouteDecision, RoutingPolicy};
use switchboard_core::wrapup::{BuiltinWrapUp, WrapUpReasons};
use switchboard_plugin::{ROLE_CHANNEL, ROLE_ROUTING};

fn load(
    lib: &str,
    settings: serde_json::Value,
    queues: &[&str],
) -> Result<NativePlugin, switchboard_core::native::NativeError> {
    let dir = scratch(lib);
    let mut spec = NativeSpec::new("t", plugin(lib), &dir);
    spec.settings = settings;
    spec.queues = queues.iter().map(|q| q.to_string()).collect();
    NativePlugin::load(&spec, 1, 0)
}

fn lua_skills() -> Generation {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let spec = ScriptSpec {
        tenant: "t".into(),
        files: ScriptFiles::read_dir(&dir).expect("bundled scripts"),
        routing: Some("routing/skills.lua".into()),
        wrapup: None,
        wrapup_queues: BTreeMap::new(),
        responses: None,
        channels: BTreeMap::new(),
        queues: vec!["support".into(), "billing".into()],
        masker: Masker::default(),
        limits: Limits::default(),
    };
    Generation::load(&spec, 1, 0).expect("skills.lua loads")
}

/// A small deterministic generator (no dependency for one test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn skills_router_answers_like_skills_lua() {
    let lua = lua_skills();
    let native = load(
        "skills_router",
        serde_json::Value::Null,
        &["support", "billing"],
    )
    .expect("skills-router loads");
    let skills = ["en", "fr", "de", "billing", "vip", "FR"];
    let tags = [
        "",
        "billing",
        "vip, billing",
        "VIP",
        "en\tbilling",
        " ,fr, ",
        "de vip",
    ];
    let languages = ["", "fr", "EN", "de", "nl"];
    let topics = ["", "billing", "sales"];
    let mut rng = Lcg(42);
    let mut agreed_on_skilled = 0;
    for case in 0..400 {
        let n = 1 + rng.next(8) as usize;
        let specs: Vec<(String, u64, Vec<&str>)> = (0..n)
            .map(|i| {
                let own: Vec<&str> = skills
                    .iter()
                    .copied()
                    .filter(|_| rng.next(2) == 0)
                    .collect();
                (
                    // Ids unique per case: the Lua host caches each agent's
                    // table by id and relies on an agent's skills never
                    // changing within an engine (see lua/roles.rs).
                    format!("agent{}-{case}", rng.next(5) * 10 + i as u64),
                    rng.next(4),
                    own,
                )
            })
            .collect();
        let borrowed: Vec<(&str, u64, &[&str])> = specs
            .iter()
            .map(|(id, idle, s)| (id.as_str(), *idle, s.as_slice()))
            .collect();
        let mut agents = Agents::new(&borrowed);
        agents.load = (0..n).map(|_| rng.next(3) as u32).collect();
        let mut pairs = Vec::new();
        let tag = tags[rng.next(tags.len() as u64) as usize];
        let language = languages[rng.next(languages.len() as u64) as usize];
        let topic = topics[rng.next(topics.len() as u64) as usize];
        if !tag.is_empty() {
            pairs.push(("tags", tag));
        }
        if !language.is_empty() {
            pairs.push(("language", language));
        }
        if !topic.is_empty() {
            pairs.push(("topic", topic));
        }
        let cad = cad(&pairs);
        let conv = view("support", &cad);
        let cands = agents.candidates();
        let expected = lua.route(&conv, &cands);
        assert_eq!(
            native.route(&conv, &cands),
            expected,
            "case {case}: {cad:?} {specs:?}"
        );
        assert_eq!(
            native.entry(&conv),
            lua.entry(&conv),
            "case {case}: {cad:?}"
        );
        if !tag.is_empty() || !language.is_empty() {
            agreed_on_skilled += 1;
        }
    }
    assert!(agreed_on_skilled > 200);
    let native_report = &native.report()[0];
    assert_eq!((native_report.calls, native_report.errors), (800, 0));
    assert!(lua.report().iter().all(|r| r.errors == 0));
}

/// The same pool of agents over many decisions, as in a live tenant:
/// loads, idle times and skills change between calls, candidates come and
/// go and change order, agents leave the pool for good. The plugin's agent
/// table (ABI 2: told once, then numeric changes and slots per decision)
/// must answer exactly like skills.lua given everything afresh.
#[test]
fn the_agent_table_follows_changes_between_decisions() {
    let lua = lua_skills();
    let native = load(
        "skills_router",
        serde_json::Value::Null,
        &["support", "billing"],
    )
    .expect("skills-router loads");
    let pool = 40;
    let skills = ["en", "fr", "billing", "vip"];
    // Every subset of the skills, each its own list: an agent's skills
    // change by pointing at another list, as a configuration reload does
    // (agent configs never change in place; see lua/roles.rs).
    let variants: Vec<Vec<String>> = (0..16)
        .map(|m| {
            (0..4)
                .filter(|b| m & (1 << b) != 0)
                .map(|b| skills[b].to_string())
                .collect()
        })
        .collect();
    let mut rng = Lcg(7);
    let ids: Vec<String> = (0..pool).map(|i| format!("a{i:02}")).collect();
    let mut own: Vec<usize> = vec![1; pool];
    let new_ids: Vec<String> = (0..30).map(|k| format!("new{k}")).collect();
    let mut idle: Vec<u64> = (0..pool).map(|i| 100 + i as u64).collect();
    let mut load_of: Vec<u32> = vec![0; pool];
    let languages = ["", "fr", "en"];
    let tags = ["", "billing", "vip"];
    // Enough decisions for agents who left to be swept out of the table
    // and their slots reused by newcomers.
    let decisions = 2600;
    let mut newcomers = 0;
    for n in 0..decisions {
        // A few changes per decision.
        for _ in 0..3 {
            let i = rng.next(pool as u64) as usize;
            match rng.next(4) {
                0 => load_of[i] = rng.next(3) as u32,
                1 => idle[i] = 100 + rng.next(60),
                2 => own[i] = rng.next(16) as usize,
                _ => {}
            }
        }
        // From decision 1200 on, agents a00..a09 are gone for good and
        // newcomers join under new ids.
        let mut cands: Vec<Candidate<'_>> = Vec::new();
        if n >= 1200 && n % 100 == 0 {
            newcomers += 1;
        }
        for i in 0..pool {
            if n >= 1200 && i < 10 {
                continue;
            }
            if rng.next(5) == 0 {
                continue; // busy this time
            }
            cands.push(Candidate {
                id: &ids[i],
                name: &ids[i],
                load: load_of[i],
                capacity: 5,
                idle_since: idle[i],
                skills: &variants[own[i]],
                stamp: 0,
            });
        }
        for (k, id) in new_ids.iter().enumerate().take(newcomers) {
            cands.push(Candidate {
                id,
                name: id,
                load: 0,
                capacity: 5,
                idle_since: 150 + k as u64,
                skills: &variants[2],
                stamp: 0,
            });
        }
        if rng.next(3) == 0 {
            cands.reverse();
        }
        if cands.is_empty() {
            continue;
        }
        let mut pairs = Vec::new();
        let language = languages[rng.next(3) as usize];
        let tag = tags[rng.next(3) as usize];
        if !language.is_empty() {
            pairs.push(("language", language));
        }
        if !tag.is_empty() {
            pairs.push(("tags", tag));
        }
        let cad = cad(&pairs);
        let conv = view("support", &cad);
        assert_eq!(
            native.route(&conv, &cands),
            lua.route(&conv, &cands),
            "decision {n}: {cad:?}"
        );
    }
    assert!(newcomers >= 10);
    let r = &native.report()[0];
    assert_eq!(r.errors, 0, "{r:?}");
}

/// Agents that stay at the same place in the candidate list decision
/// after decision (the common case, which the host checks by address
/// only) are never swept out of the plugin's table, however long they
/// stay; agents who left are, and newcomers reuse their slots; the list
/// shrinking and agents swapping places are followed too.
#[test]
fn a_steady_pool_keeps_its_slots_across_sweeps() {
    let lua = lua_skills();
    let native =
        load("skills_router", serde_json::Value::Null, &["support"]).expect("skills-router loads");
    let fr: Vec<String> = vec!["en".into(), "fr".into()];
    let en: Vec<String> = vec!["en".into()];
    let ids: Vec<String> = (0..40).map(|i| format!("s{i:02}")).collect();
    let new_ids: Vec<String> = (0..20).map(|i| format!("late{i:02}")).collect();
    let mut idle: Vec<u64> = (0..40).map(|i| 1000 + i as u64).collect();
    let mut rng = Lcg(11);
    let cad = cad(&[("language", "fr")]);
    let conv = view("support", &cad);
    for n in 0..3200u64 {
        // One steady agent's idle time moves per decision, so the winner
        // changes among the steady agents and the late ones.
        let i = rng.next(20) as usize;
        idle[i] = 900 + rng.next(200);
        let mut cands: Vec<Candidate<'_>> = (0..20)
            .map(|i| Candidate {
                id: &ids[i],
                name: &ids[i],
                load: 0,
                capacity: 5,
                idle_since: idle[i],
                skills: if i % 2 == 0 { &fr } else { &en },
                stamp: 0,
            })
            .collect();
        // Twenty more at the end until decision 100, then gone for good:
        // the list shrinks and their slots are swept, then reused.
        if n < 100 {
            cands.extend((20..40).map(|i| Candidate {
                id: &ids[i],
                name: &ids[i],
                load: 0,
                capacity: 5,
                idle_since: idle[i],
                skills: &fr,
                stamp: 0,
            }));
        }
        // Newcomers join one by one after the first sweep.
        let late = (n.saturating_sub(1100) / 100).min(20) as usize;
        cands.extend(
            new_ids
                .iter()
                .take(late)
                .enumerate()
                .map(|(k, id)| Candidate {
                    id,
                    name: id,
                    load: 0,
                    capacity: 5,
                    idle_since: 950 + 7 * k as u64,
                    skills: &fr,
                    stamp: 0,
                }),
        );
        // Now and then two steady agents swap places for one decision.
        if n % 97 == 0 {
            cands.swap(3, 4);
        }
        assert_eq!(
            native.route(&conv, &cands),
            lua.route(&conv, &cands),
            "decision {n}"
        );
    }
    let r = &native.report()[0];
    assert_eq!(r.errors, 0, "{r:?}");
}

#[test]
fn skills_router_weights_come_from_settings() {
    let p = load(
        "skills_router",
        serde_json::json!({"weights": {"billing": 5}}),
        &[],
    )
    .expect("load");
    let agents = Agents::new(&[("a", 1, &["en"]), ("b", 5, &["billing"])]);
    let cad = cad(&[("tags", "billing,en"), ("language", "fr")]);
    assert_eq!(
        p.route(&view("support", &cad), &agents.candidates()),
        RouteDecision::Agent("b".into())
    );
    let err = load("skills_router", serde_json::json!({"weights": [1]}), &[]).expect_err("refused");
    assert!(
        matches!(err.kind, ErrorKind::Create { kind: "error", .. }),
        "{err}"
    );
}

fn twilio() -> NativePlugin {
    load(
        "sms_adapter",
        serde_json::json!({
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "auth_token": "s3cr3t",
            "from": "+15005550006",
            "api_base": "http://127.0.0.1:4010/"
        }),
        &[],
    )
    .expect("sms-adapter loads")
}

fn webhook(body: &str) -> HttpRequest {
    let mut headers = BTreeMap::new();
    headers.insert(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    );
    headers.insert(
        "x-twilio-signature".to_string(),
        "checked-by-the-host".to_string(),
    );
    HttpRequest {
        method: "POST".into(),
        path: "/channels/sms/webhook".into(),
        query: BTreeMap::new(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

/// A Twilio inbound-message webhook, as Twilio sends it.
const INBOUND: &str = "ToCountry=US&ToState=CA&SmsMessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f\
&NumMedia=1&ToCity=&FromZip=94105&SmsSid=SM1f0e8ae6ade43cb3c0ce4525424e404f&FromState=CA\
&SmsStatus=received&FromCity=SAN+FRANCISCO&Body=My+card+was+charged+twice+%E2%80%94+help%21\
&FromCountry=US&To=%2B15005550006&ToZip=&NumSegments=1&MessageSid=SM1f0e8ae6ade43cb3c0ce4525424e404f\
&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B14155552671&ApiVersion=2010-04-01\
&MediaContentType0=image%2Fjpeg&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fmedia%2FME1";

#[test]
fn sms_adapter_reads_twilio_webhooks() {
    let p = twilio();
    let sms = p.channel("sms").expect("channel role");
    assert_eq!(sms.verify(&webhook(INBOUND)), Ok(Verdict::Accept));
    let mut get = webhook(INBOUND);
    get.method = "GET".into();
    assert_eq!(
        sms.verify(&get),
        Ok(Verdict::Respond(HttpResponse::text(405, "POST only")))
    );
    let other_account = INBOUND.replace("AccountSid=AC0123", "AccountSid=AC9999");
    assert_eq!(
        sms.verify(&webhook(&other_account)),
        Ok(Verdict::Respond(HttpResponse::text(403, "unknown account")))
    );

    let inbound = sms.inbound(&webhook(INBOUND)).expect("inbound");
    let mut cad = BTreeMap::new();
    for (k, v) in [
        ("sms_number", "+15005550006"),
        ("sms_message_sid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
        ("sms_from_country", "US"),
        ("sms_from_city", "SAN FRANCISCO"),
    ] {
        cad.insert(k.to_string(), v.to_string());
    }
    assert_eq!(
        inbound.events,
        vec![ChannelEvent::Message(InboundMessage {
            customer: "+14155552671".into(),
            customer_name: None,
            text: "My card was charged twice — help! [image]".into(),
            entry_point: "+15005550006".into(),
            sent_at: None,
            cad,
            external_id: Some("SM1f0e8ae6ade43cb3c0ce4525424e404f".into()),
            attachments: Vec::new(),
        })]
    );
    assert_eq!(
        inbound.response,
        HttpResponse {
            status: 200,
            content_type: "text/xml".into(),
            body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".into(),
        }
    );
    // A webhook without a sender is an adapter error: the host answers 503.
    let err = sms
        .inbound(&webhook("Body=hi&To=%2B15005550006"))
        .expect_err("no From");
    assert_eq!(err.channel, "sms");
    assert!(
        err.message.contains("webhook without From"),
        "{}",
        err.message
    );
    assert_eq!(p.report()[0].errors, 1);
}

#[test]
fn sms_adapter_builds_the_exact_twilio_request() {
    let p = twilio();
    let sms = p.channel("sms").expect("channel role");
    let message = OutboundMessage {
        conversation: 12,
        customer: "+14155552671".into(),
        author: "Ann".into(),
        text: "Refund done & sorry: 100% fixed".into(),
    };
    let ctx = OutboundContext {
        now: 1_700_000_000_000,
        last_customer_message_at: Some(1_699_999_000_000),
    };
    let mut headers = BTreeMap::new();
    // base64("AC0123456789abcdef0123456789abcdef:s3cr3t")
    headers.insert(
        "authorization".to_string(),
        "Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjpzM2NyM3Q=".to_string(),
    );
    headers.insert(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    );
    assert_eq!(
        sms.outbound(&message, &ctx),
        Ok(Outbound::Send(OutgoingRequest {
            method: "POST".into(),
            url: "http://127.0.0.1:4010/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json".into(),
            headers,
            body: serde_json::Value::String(
                "To=%2B14155552671&From=%2B15005550006&Body=Refund+done+%26+sorry%3A+100%25+fixed".into()
            ),
        }))
    );
    let long = OutboundMessage {
        text: "x".repeat(1601),
        ..message
    };
    assert_eq!(
        sms.outbound(&long, &ctx),
        Ok(Outbound::Refuse(
            "an SMS body holds at most 1600 characters".into()
        ))
    );
}

#[test]
fn sms_adapter_settings_are_checked_at_load() {
    let err = load(
        "sms_adapter",
        serde_json::json!({"account_sid": "AC1"}),
        &[],
    )
    .expect_err("refused");
    assert!(
        err.to_string()
            .contains("create failed (error): settings: missing field `auth_token`"),
        "{err}"
    );
    // Used as a routing policy: it does not fill that role.
    let dir = scratch("sms-role");
    let mut spec = NativeSpec::new("t", plugin("sms_adapter"), &dir);
    spec.roles = ROLE_ROUTING | ROLE_CHANNEL;
    spec.settings = serde_json::json!({"account_sid": "AC1", "auth_token": "t", "from": "+1"});
    let err = NativePlugin::load(&spec, 1, 0).expect_err("refused");
    assert_eq!(
        err.kind,
        ErrorKind::MissingRole {
            name: "sms-adapter".into(),
            role: "routing"
        }
    );
}

#[test]
fn panics_are_caught_counted_and_the_plugin_keeps_serving() {
    let p = load("test_plugin", serde_json::Value::Null, &["support"]).expect("load");
    p.set_now(42);
    let agents = Agents::new(&[("a", 5, &[]), ("b", 1, &[]), ("c", 9, &[])]);
    let cad = cad(&[]);
    let cands = agents.candidates();
    assert_eq!(
        p.route(&view("support", &cad), &cands),
        RouteDecision::Ranked(vec!["c".into(), "b".into(), "a".into()])
    );
    // A panic or an error: the built-in policy decides instead.
    for _ in 0..12 {
        assert_eq!(
            p.route(&view("panic", &cad), &cands),
            RouteDecision::Fallback
        );
    }
    assert_eq!(
        p.route(&view("error", &cad), &cands),
        RouteDecision::Fallback
    );
    // Still serving.
    assert!(matches!(
        p.route(&view("support", &cad), &cands),
        RouteDecision::Ranked(_)
    ));

    let reports = p.report();
    let roles: Vec<&str> = reports.iter().map(|r| r.role).collect();
    assert_eq!(roles, ["routing", "wrapup", "channel", "responses"]);
    let routing = &reports[0];
    assert_eq!((routing.calls, routing.errors), (15, 13));
    assert_eq!(routing.last_errors.len(), 10);
    let panic = &routing.last_errors[0];
    assert_eq!(panic.kind, "panic");
    assert_eq!(panic.message, "plugin panicked: route panicked on purpose");
    assert_eq!(panic.at, 42);
    let error = &routing.last_errors[9];
    assert_eq!(
        (error.kind, error.message.as_str()),
        ("error", "route failed on purpose")
    );

    // Wrap-up: the plugin's list, or the built-in one when it fails.
    assert_eq!(p.reasons("support")[0].label, "Done in support");
    assert_eq!(
        p.reasons("panic"),
        BuiltinWrapUp::default().reasons("panic")
    );
    assert_eq!(
        p.reasons("dupes"),
        BuiltinWrapUp::default().reasons("dupes")
    );
    let wrapup = &p.report()[1];
    assert_eq!((wrapup.calls, wrapup.errors), (3, 2));
    assert_eq!(
        wrapup.last_errors[1].message,
        "wrapup_reasons: code \"done\" appears twice"
    );

    // Channel: a panic is a ChannelError, the next request goes through.
    let ch = p.channel("test").expect("channel");
    let mut req = webhook("panic");
    let err = ch.inbound(&req).expect_err("panicked");
    assert!(
        err.message
            .contains("panic: plugin panicked: inbound panicked on purpose"),
        "{}",
        err.message
    );
    req.body = b"hello".to_vec();
    assert_eq!(ch.inbound(&req).expect("inbound").events.len(), 1);

    let admin = p.plugin_report();
    assert!(admin.trusted_code);
    assert_eq!(admin.note, TRUSTED_CODE_NOTE);
    assert_eq!(admin.name, "test-plugin");
    assert_eq!(admin.roles, ["routing", "wrapup", "channel", "responses"]);
    let json = serde_json::to_value(&admin).expect("serializes");
    assert_eq!(json["files"][0]["last_errors"][0]["kind"], "panic");
}

#[test]
fn a_failing_create_or_wrapup_check_refuses_the_load() {
    let err =
        load("test_plugin", serde_json::json!({"create": "panic"}), &[]).expect_err("refused");
    assert_eq!(
        err.kind,
        ErrorKind::Create {
            kind: "panic",
            message: "plugin panicked: create panicked on purpose".into()
        }
    );
    let err = load(
        "test_plugin",
        serde_json::Value::Null,
        &["support", "dupes", "panic"],
    )
    .expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("queue \"dupes\": wrapup_reasons: code \"done\" appears twice"),
        "{text}"
    );
    assert!(
        text.contains("queue \"panic\": plugin panicked: wrapup panicked on purpose"),
        "{text}"
    );
}

#[test]
fn canned_responses_come_from_a_plugin_checked_like_a_scripts() {
    use switchboard_core::responses::{check_responses, CannedResponse};
    let p = load(
        "test_plugin",
        serde_json::Value::Null,
        &["support", "billing"],
    )
    .expect("load");
    let list = p.responses();
    let codes: Vec<&str> = list.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["greet", "bye"]);
    assert_eq!(list[1].queues, ["support"]);
    assert!(list[1].applies_to("support", Some("en")));
    assert!(!list[1].applies_to("billing", Some("en")));
    assert_eq!(
        list[0].fill("Zoé", "Alice", "Support"),
        "Hello Zoé, Alice here."
    );

    // A bad list refuses the load with the words of the one check a Lua
    // `responses` script's list goes through.
    let same = |code: &str, queues: Vec<String>| CannedResponse {
        code: code.into(),
        title: format!("Title of {code}"),
        text: "x".into(),
        queues,
        language: None,
    };
    let queues = ["support".to_string()];
    for (mode, bad) in [
        ("dupes", vec![same("greet", vec![]), same("greet", vec![])]),
        (
            "unknown-queue",
            vec![
                same("a", vec![]),
                same("b", vec![]),
                same("lost", vec!["nowhere".into()]),
            ],
        ),
    ] {
        let err = load(
            "test_plugin",
            serde_json::json!({ "responses": mode }),
            &["support"],
        )
        .expect_err("refused");
        let expected = check_responses(bad, &queues, "responses").expect_err("bad list");
        let text = err.to_string();
        assert!(
            text.contains("canned responses refused") && text.contains(&expected),
            "{text} / {expected}"
        );
    }
}

#[test]
fn one_instance_serves_several_threads() {
    let p = load("skills_router", serde_json::Value::Null, &[]).expect("load");
    let agents = Agents::new(&[("a", 5, &["fr"]), ("b", 1, &["en"])]);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let cad = cad(&[("language", "fr")]);
                for _ in 0..200 {
                    assert_eq!(
                        p.route(&view("support", &cad), &agents.candidates()),
                        RouteDecision::Agent("a".into())
                    );
                }
            });
        }
    });
    assert_eq!(p.report()[0].calls, 800);
}
