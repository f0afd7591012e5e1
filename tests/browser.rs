//! The agent desktop (`/`) and the customer web chat (`/chat/demo`) in a real
//! headless Chromium, against the real server binary on loopback.
//!
//! Run with `cargo test --features browser-tests --test browser` (needs
//! /usr/bin/chromium and /usr/bin/chromedriver: Debian's `chromium` and
//! `chromium-driver`). Screenshots of the main screens land in
//! `<target dir>/screenshots/`.
#![cfg(feature = "browser-tests")]

#[path = "common/browser.rs"]
mod browser;
mod common;
#[path = "common/graph.rs"]
mod graph;
use browser::*;
use common::*;
use reqwest::Method;

const GREY_BUBBLE: &str = "rgba(236, 239, 243, 1)";
const BLUE_BUBBLE: &str = "rgba(27, 110, 243, 1)";

/// Desktop notifications in headless Chromium cannot be granted by a user:
/// the browser's `Notification` API is replaced by a recorder with
/// permission granted, so a test sees what the page would show.
const RECORD_NOTIFICATIONS: &str = "window.__notes = []; \
    window.Notification = function (title, opts) { \
        window.__notes.push({title: title, body: opts && opts.body}); \
        this.close = function () {}; \
    }; \
    window.Notification.permission = 'granted'; return true;";

/// The form controls and buttons that a screen reader could not name (no
/// label, aria-label, title or text).
const UNNAMED_CONTROLS: &str =
    "return Array.from(document.querySelectorAll('button, input, select, textarea')) \
    .filter(function (e) { \
        var label = e.labels && e.labels.length ? e.labels[0].textContent.trim() : ''; \
        return !(e.getAttribute('aria-label') || label || e.textContent.trim() || e.title); \
    }).map(function (e) { return e.outerHTML.slice(0, 120); });";

/// The conversation id of the first offer popup shown on `page`.
async fn first_offer(page: &Page) -> u64 {
    let offer = page.shown("#offers .offer").await;
    offer
        .attr("data-conversation")
        .await
        .expect("offer attribute")
        .and_then(|v| v.parse().ok())
        .expect("offer has a conversation id")
}

async fn css(page: &Page, selector: &str, prop: &str) -> String {
    page.shown(selector)
        .await
        .css_value(prop)
        .await
        .expect("css value")
}

async fn bubble_count(page: &Page) -> u64 {
    page.js("return document.querySelectorAll('#messages .msg').length")
        .await
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_handle_a_web_chat_from_offer_to_wrap_up() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let (customer, alice, bob, carol) = tokio::join!(
        driver.open("customer"),
        driver.open("alice"),
        driver.open("bob"),
        driver.open("carol")
    );

    // Log in. Only alice is Available when the customer writes.
    alice.goto(&server.url("/")).await;
    alice.shown("#login-dialog #login-agent").await;
    alice.screenshot("login").await;
    alice.log_in_dialog("alice").await;
    assert_eq!(alice.text("#agent-name").await, "Alice Martin");
    alice.set_available().await;
    bob.login(&server.base, "bob").await;
    carol.login(&server.base, "carol").await;

    // The customer opens the chat page and writes.
    // No socket before the first message: the server issues the visitor's
    // token in its answer, the page keeps it for the tab's session and
    // then connects with it.
    customer.goto(&server.url("/chat/demo")).await;
    customer
        .until_js(
            "the chat to be ready",
            "document.getElementById('chat-conn').dataset.state === 'ready'",
        )
        .await;
    customer.type_in("#chat-name", "Jeanne Dupont").await;
    customer
        .type_in(
            "#chat-input",
            &format!("Bonjour, ma facture est fausse{ENTER}"),
        )
        .await;
    customer
        .shown_with_text("#chat-log .msg-mine", "Bonjour, ma facture est fausse")
        .await;
    customer
        .until_js(
            "the chat to be connected",
            "document.getElementById('chat-conn').dataset.state === 'online'",
        )
        .await;
    assert_eq!(
        customer
            .js("return [(sessionStorage.getItem('switchboard.visitorToken.demo') || '').length, localStorage.getItem('switchboard.visitorToken.demo')]")
            .await,
        serde_json::json!([64, null]),
        "the token is kept for the tab's session only"
    );

    // The offer popup: queue, source, a running timer and Accept.
    let id = first_offer(&alice).await;
    let offer = Page::offer(id);
    assert_eq!(
        alice.text(&format!("{offer} .offer-title")).await,
        "Jeanne Dupont"
    );
    assert_eq!(
        alice.text(&format!("{offer} .offer-queue")).await,
        "Support"
    );
    assert_eq!(
        alice.text(&format!("{offer} .offer-source")).await,
        "Web chat"
    );
    assert_eq!(
        alice.text(&format!("{offer} .offer-preview")).await,
        "Bonjour, ma facture est fausse"
    );
    let timer = format!("{offer} .offer-timer");
    let first = alice.text(&timer).await;
    assert!(
        first.len() == 5 && first.as_bytes()[2] == b':',
        "timer reads mm:ss: {first:?}"
    );
    alice
        .until("the offer timer to move", || async {
            let now = alice.text(&timer).await;
            (now != first && now > first).then_some(())
        })
        .await;
    alice.screenshot("offer-popup").await;

    // Accept: the conversation opens with the customer's grey bubble and
    // initials.
    alice.click(&format!("{offer} .offer-accept")).await;
    alice.gone(&offer).await;
    alice
        .shown_with_text("#messages .msg-customer", "Bonjour, ma facture est fausse")
        .await;
    assert_eq!(alice.text("#messages .msg-customer .avatar").await, "JD");
    assert_eq!(
        css(
            &alice,
            "#messages .msg-customer .bubble",
            "background-color"
        )
        .await,
        GREY_BUBBLE
    );
    assert_eq!(alice.text("#pane-state").await, "Active");
    assert!(
        alice.text("#cad").await.contains("Web chat"),
        "CAD shows the entry point"
    );
    customer
        .shown_with_text("#chat-log .msg-system", "Alice Martin joined the chat.")
        .await;

    // The agent answers with Enter: a blue bubble, delivered to the customer.
    alice
        .type_in(
            "#compose",
            &format!("Bonjour Jeanne, je regarde votre facture.{ENTER}"),
        )
        .await;
    alice
        .shown_with_text("#messages .msg-agent", "je regarde votre facture")
        .await;
    assert_eq!(
        css(&alice, "#messages .msg-agent .bubble", "background-color").await,
        BLUE_BUBBLE
    );
    let reply = customer
        .shown_with_text("#chat-log .msg-agent-reply", "je regarde votre facture")
        .await;
    assert!(reply.text().await.expect("text").contains("Alice Martin"));
    // Reloading the page keeps the visitor (same tab session): the history
    // is back, the socket reconnects with the token, replies keep coming.
    customer.goto(&server.url("/chat/demo")).await;
    customer
        .shown_with_text("#chat-log .msg-agent-reply", "je regarde votre facture")
        .await;
    customer
        .until_js(
            "the chat to reconnect with its token",
            "document.getElementById('chat-conn').dataset.state === 'online'",
        )
        .await;
    // Shift+Enter makes a new line; Enter sends.
    alice
        .type_in(
            "#compose",
            &format!("Première ligne{SHIFT}{ENTER}{RELEASE}Deuxième ligne{ENTER}"),
        )
        .await;
    let two_lines = alice
        .shown_with_text("#messages .msg-agent .text", "Deuxième ligne")
        .await;
    assert_eq!(
        two_lines.text().await.expect("text"),
        "Première ligne\nDeuxième ligne"
    );
    customer
        .shown_with_text("#chat-log .msg-agent-reply", "Deuxième ligne")
        .await;

    // Markup from the customer is shown as text and never runs.
    let markup =
        r#"<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>gras</b>"#;
    customer
        .type_in("#chat-input", &format!("{markup}{ENTER}"))
        .await;
    let shown = alice
        .shown_with_text("#messages .msg-customer .text", "<b>gras</b>")
        .await;
    assert_eq!(shown.text().await.expect("text"), markup);
    for page in [&alice, &customer] {
        assert_eq!(
            page.js("return typeof window.__pwned").await,
            "undefined",
            "[{}] customer markup ran",
            page.name
        );
        assert_eq!(
            page.js("return document.querySelectorAll('.messages img, .messages script, .messages b').length")
                .await,
            0,
            "[{}] customer markup became elements",
            page.name
        );
    }
    alice.screenshot("conversation").await;

    // The composer counts characters and the server refuses over 1000.
    let before = bubble_count(&alice).await;
    alice.type_in("#compose", &"a".repeat(1000)).await;
    alice.text_is("#counter", "1000 / 1000").await;
    assert!(!alice
        .js("return document.getElementById('counter').classList.contains('over')")
        .await
        .as_bool()
        .unwrap_or(true));
    alice.type_in("#compose", "b").await;
    alice.text_is("#counter", "1001 / 1000").await;
    alice
        .shown_with_text("#compose-error", "longer than 1000 characters")
        .await;
    alice.click("#send").await;
    alice
        .shown_with_text(
            "#compose-error",
            "message is longer than 1000 characters (1001)",
        )
        .await;
    assert_eq!(bubble_count(&alice).await, before, "nothing was sent");
    assert_eq!(
        alice
            .js("return Array.from(document.getElementById('compose').value).length")
            .await,
        1001,
        "the text stays for the agent to shorten"
    );
    alice
        .type_in("#compose", &format!("{CONTROL}a{RELEASE}{BACKSPACE}"))
        .await;
    alice.text_is("#counter", "0 / 1000").await;
    alice.text_is("#compose-error", "").await;

    // Transfer: queues and agents, each filtered by the search field; the
    // refresh button fetches current availability.
    bob.set_available().await;
    alice.click("#btn-transfer").await;
    alice.shown("#transfer-dialog").await;
    alice
        .shown_with_text("#transfer-list .pick-item", "Support")
        .await;
    alice
        .shown_with_text("#transfer-list .pick-item", "Billing")
        .await;
    alice.type_in("#transfer-search", "bill").await;
    alice
        .gone("#transfer-list .pick-item[data-id=\"support\"]")
        .await;
    alice
        .shown_with_text("#transfer-list .pick-item", "Billing")
        .await;
    alice.click("#transfer-kind-agent").await;
    alice.gone("#transfer-list .pick-item").await;
    alice
        .shown_with_text("#transfer-list .empty-list", "Nothing matches")
        .await;
    let search = alice.shown("#transfer-search").await;
    search.clear().await.expect("clear search");
    alice.type_in("#transfer-search", " ").await; // input event: list redrawn unfiltered
    alice
        .shown_with_text("#transfer-list .pick-item[data-id=\"carol\"]", "Idle")
        .await;
    carol.set_available().await;
    alice.click("#transfer-refresh").await;
    alice
        .shown_with_text("#transfer-list .pick-item[data-id=\"carol\"]", "Available")
        .await;
    let search = alice.shown("#transfer-search").await;
    search.clear().await.expect("clear search");
    alice.type_in("#transfer-search", "bo").await;
    alice
        .shown_with_text("#transfer-list .pick-item[data-id=\"bob\"]", "Available")
        .await;
    alice
        .gone("#transfer-list .pick-item[data-id=\"carol\"]")
        .await;
    alice.screenshot("transfer-dialog").await;
    assert_eq!(
        alice.js(UNNAMED_CONTROLS).await,
        serde_json::json!([]),
        "every control has a name for screen readers"
    );
    alice
        .click("#transfer-list .pick-item[data-id=\"bob\"]")
        .await;
    alice.click("#transfer-submit").await;
    alice.gone("#transfer-dialog").await;

    // Wrap-up follows the transfer, with a search filter on the reasons.
    alice.shown("#wrapup-dialog").await;
    alice
        .shown_with_text("#wrapup-list .pick-item", "Resolved")
        .await;
    alice.type_in("#wrapup-search", "trans").await;
    alice
        .gone("#wrapup-list .pick-item[data-id=\"resolved\"]")
        .await;
    alice
        .shown_with_text("#wrapup-list .pick-item", "Transferred")
        .await;
    alice.screenshot("wrapup-dialog").await;
    alice
        .click("#wrapup-list .pick-item[data-id=\"transferred\"]")
        .await;
    alice.click("#wrapup-submit").await;
    alice.gone("#wrapup-dialog").await;
    alice
        .gone(&format!("#conv-list li[data-conversation=\"{id}\"]"))
        .await;

    // Bob gets the transfer with the whole transcript.
    let offer = Page::offer(id);
    bob.shown(&format!("{offer}[data-kind=\"transfer\"]")).await;
    assert_eq!(
        bob.js(&format!(
            "return document.querySelector('{offer} .offer-kind').textContent"
        ))
        .await,
        "Transferred to you"
    );
    bob.click(&format!("{offer} .offer-accept")).await;
    bob.shown_with_text("#messages .msg-agent", "Alice Martin")
        .await;
    bob.shown_with_text("#messages .msg-customer", "ma facture est fausse")
        .await;
    bob.shown_with_text("#messages .msg-system", "transferred the conversation")
        .await;

    // Conference with carol: requested, then conference; carol leaves.
    bob.click("#btn-conference").await;
    bob.shown("#conference-dialog").await;
    bob.type_in("#conference-search", "car").await;
    bob.gone("#conference-list .pick-item[data-id=\"alice\"]")
        .await;
    bob.click("#conference-list .pick-item[data-id=\"carol\"]")
        .await;
    bob.click("#conference-submit").await;
    bob.gone("#conference-dialog").await;
    bob.text_is("#pane-state", "Conference requested").await;
    carol
        .shown(&format!("{offer}[data-kind=\"conference\"]"))
        .await;
    carol.click(&format!("{offer} .offer-accept")).await;
    bob.text_is("#pane-state", "Conference").await;
    bob.shown_with_text(
        "#messages .msg-system",
        "Carol Smith joined the conversation",
    )
    .await;
    carol
        .shown_with_text("#messages .msg-customer", "ma facture est fausse")
        .await;
    carol.shown("#btn-leave-conference").await;
    assert!(!carol
        .js("return !document.getElementById('btn-end-conference').hidden")
        .await
        .as_bool()
        .unwrap_or(true));
    bob.shown("#btn-end-conference").await;
    assert!(!bob
        .js("return !document.getElementById('btn-leave-conference').hidden")
        .await
        .as_bool()
        .unwrap_or(true));
    carol
        .type_in(
            "#compose",
            &format!("Bonjour, Carol du service facturation.{ENTER}"),
        )
        .await;
    bob.shown_with_text("#messages .msg-agent", "Carol Smith")
        .await;
    customer
        .shown_with_text("#chat-log .msg-agent-reply", "Carol du service facturation")
        .await;
    carol.click("#btn-leave-conference").await;
    carol
        .gone(&format!("#conv-list li[data-conversation=\"{id}\"]"))
        .await;
    bob.text_is("#pane-state", "Active").await;
    bob.shown_with_text("#messages .msg-system", "Carol Smith left the conversation")
        .await;
    customer
        .shown_with_text("#chat-log .msg-system", "Carol Smith left the chat.")
        .await;

    // Conference again; this time bob ends it: both owe a wrap-up.
    bob.click("#btn-conference").await;
    bob.click("#conference-list .pick-item[data-id=\"carol\"]")
        .await;
    bob.click("#conference-submit").await;
    carol.click(&format!("{offer} .offer-accept")).await;
    bob.text_is("#pane-state", "Conference").await;
    bob.click("#btn-end-conference").await;
    bob.shown("#wrapup-dialog").await;
    bob.type_in("#wrapup-search", "resol").await;
    bob.gone("#wrapup-list .pick-item[data-id=\"other\"]").await;
    bob.click("#wrapup-list .pick-item[data-id=\"resolved\"]")
        .await;
    bob.click("#wrapup-submit").await;
    bob.gone("#wrapup-dialog").await;
    bob.gone(&format!("#conv-list li[data-conversation=\"{id}\"]"))
        .await;
    carol.shown("#wrapup-dialog").await;
    carol
        .click("#wrapup-list .pick-item[data-id=\"follow_up\"]")
        .await;
    carol.click("#wrapup-submit").await;
    carol.gone("#wrapup-dialog").await;
    customer
        .shown_with_text("#chat-log .msg-system", "The conversation has ended")
        .await;
    customer.screenshot("customer-chat").await;

    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    assert_eq!(list[0]["state"], "wrapped_up", "{list}");

    // French at the flick of the language switch.
    alice.choose("#lang", "fr").await;
    alice.text_is("label[for=\"state-select\"]", "État").await;
    alice
        .shown_with_text("#state-select option[value=\"available\"]", "Disponible")
        .await;
    assert_eq!(alice.js("return document.documentElement.lang").await, "fr");

    for p in [customer, alice, bob, carol] {
        p.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rona_is_shown_and_the_agent_gets_back_to_available() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver.open("alice-rona").await;
    alice.login(&server.base, "alice").await;
    // Desktop notifications: the browser's API stands in with permission
    // granted, recording what the page shows.
    alice.js(RECORD_NOTIFICATIONS).await;
    // Idle with one of the tenant's reasons, then Available.
    alice.choose("#state-select", "idle:Lunch").await;
    alice
        .until_js(
            "the state to be Idle — Lunch",
            "document.body.dataset.agentState === 'idle' && document.getElementById('state-select').value === 'idle:Lunch'",
        )
        .await;
    alice.set_available().await;

    // Two customers write: two offer popups wait at once, each notified.
    let id = server.customer_says("v-rona", "Sam Lee", "hello?").await;
    let id2 = server
        .customer_says("v-rona-2", "Kim Park", "anyone?")
        .await;
    alice.shown(&Page::offer(id)).await;
    alice.shown(&Page::offer(id2)).await;
    alice
        .until_js("two desktop notifications", "window.__notes.length === 2")
        .await;
    let note = alice.js("return window.__notes[0]").await;
    assert_eq!(note["title"], "New request — Support");
    assert_eq!(note["body"], "hello?");
    assert_eq!(
        alice.js("return document.title").await,
        "(2) Switchboard — new request"
    );

    // Nobody accepts within the queue's 30 s: RONA, shown clearly.
    server.advance(30_001).await;
    alice.gone(&Page::offer(id)).await;
    alice.gone(&Page::offer(id2)).await;
    alice
        .shown_with_text("#rona-banner", "did not answer a request in time")
        .await;
    assert_eq!(
        alice
            .js("var s = document.getElementById('state-select'); return s.options[s.selectedIndex].text")
            .await,
        "RONA (request not answered)"
    );
    assert_eq!(
        alice
            .js("return document.getElementById('state-dot').dataset.state")
            .await,
        "rona"
    );
    // In RONA no request comes, even for a new customer.
    let id3 = server.customer_says("v-rona-3", "Lea Roy", "bonjour").await;
    let (_, list) = server
        .admin(Method::GET, "/admin/tenants/demo/conversations", None)
        .await;
    let queued = list
        .as_array()
        .expect("conversations")
        .iter()
        .filter(|c| c["state"] == "queued")
        .count();
    assert_eq!(queued, 3, "{list}");
    assert!(alice.visible_text().await.contains("No request waiting."));

    // The way back: the banner's button. The waiting customers are offered
    // again at once.
    alice.click("#rona-available").await;
    alice.gone("#rona-banner").await;
    alice
        .until_js(
            "the state to be Available",
            "document.body.dataset.agentState === 'available'",
        )
        .await;
    for c in [id, id2, id3] {
        alice.shown(&Page::offer(c)).await;
    }

    // Several conversations at once, listed on the left.
    alice.accept_offer(id).await;
    alice.text_is("#pane-title", "Sam Lee").await;
    alice.accept_offer(id2).await;
    alice.text_is("#pane-title", "Kim Park").await;
    alice
        .click(&format!("#conv-list li[data-conversation=\"{id}\"] button"))
        .await;
    alice.text_is("#pane-title", "Sam Lee").await;
    alice
        .shown_with_text("#messages .msg-customer", "hello?")
        .await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_conversation_shows_an_alert_and_can_only_be_ended() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-interrupted", &server.base, "alice")
        .await;
    let id = server
        .customer_says("v-int", "Ana Gomez", "Quiero cambiar mi plan")
        .await;
    alice.accept_offer(id).await;
    alice
        .shown_with_text("#messages .msg-customer", "Quiero cambiar mi plan")
        .await;
    alice.shown("#btn-transfer").await;

    let (status, body) = server
        .admin(Method::DELETE, "/admin/tenants/demo/queues/support", None)
        .await;
    assert_eq!(status, 200, "{body}");

    alice
        .shown_with_text(
            "#interrupted-alert",
            "queue Support was deleted by an administrator",
        )
        .await;
    alice.shown_with_text(".toast", "interrupted").await;
    alice.text_is("#pane-state", "Interrupted").await;
    alice.gone("#btn-transfer").await;
    alice.gone("#btn-conference").await;
    assert_eq!(
        alice
            .js("return document.getElementById('compose').disabled")
            .await,
        true,
        "no more writing"
    );
    alice.screenshot("interrupted").await;
    alice.click("#btn-end").await;
    alice.shown("#wrapup-dialog").await;
    alice
        .click("#wrapup-list .pick-item[data-id=\"other\"]")
        .await;
    alice.click("#wrapup-submit").await;
    alice
        .gone(&format!("#conv-list li[data-conversation=\"{id}\"]"))
        .await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_data_is_masked_on_screen() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver.open("alice-masking").await;
    alice.login(&server.base, "alice").await;
    alice.js(RECORD_NOTIFICATIONS).await;
    alice.set_available().await;
    // The customer gives an e-mail address as name and a card number.
    let id = server
        .customer_says("v-mask", "melissa@gmail.com", "my card 4111 1111 1111 1111")
        .await;
    let offer = Page::offer(id);
    alice
        .shown_with_text(
            &format!("{offer} .offer-preview"),
            "my card ************1111",
        )
        .await;
    alice
        .shown_with_text(&format!("{offer} .offer-title"), "m******@gmail.com")
        .await;
    alice
        .until_js("a desktop notification", "window.__notes.length === 1")
        .await;
    assert_eq!(
        alice.js("return window.__notes[0].body").await,
        "my card ************1111",
        "the notification carries the masked preview"
    );
    alice.click(&format!("{offer} .offer-accept")).await;
    alice
        .shown_with_text("#messages .msg-customer .text", "my card ************1111")
        .await;
    server
        .customer_says("v-mask", "melissa@gmail.com", "or call +447966197542")
        .await;
    alice
        .shown_with_text("#messages .msg-customer .text", "or call *********7542")
        .await;
    alice.shown_with_text("#cad", "m******@gmail.com").await;
    alice
        .shown_with_text("#pane-title", "m******@gmail.com")
        .await;
    let html = alice.html().await;
    for raw in [
        "4111 1111 1111 1111",
        "4111111111111111",
        "melissa@",
        "447966197542",
    ] {
        assert!(!html.contains(raw), "the page holds the raw {raw:?}");
    }
    alice.screenshot("masked").await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_reconnects_by_itself_and_asks_to_log_in_when_the_token_is_refused() {
    let dir = Server::new_dir("browser-restart");
    let mut server = Server::start_in(dir.clone(), &demo_config(), &[]);
    let port = server
        .base
        .rsplit(':')
        .next()
        .expect("port in base URL")
        .to_string();
    let fixed = demo_config().replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-reconnect", &server.base, "alice")
        .await;
    let id = server
        .customer_says("v-net", "Paul Durand", "Avant la coupure")
        .await;
    alice.accept_offer(id).await;
    alice
        .type_in("#compose", &format!("Je suis là{ENTER}"))
        .await;
    alice
        .shown_with_text("#messages .msg-agent", "Je suis là")
        .await;
    alice.type_in("#compose", "brouillon en cours").await;

    // The server goes away: the page says so and keeps everything.
    server.kill();
    alice
        .until_js(
            "the page to notice the drop",
            "document.getElementById('conn').dataset.state === 'reconnecting'",
        )
        .await;
    alice
        .shown_with_text("#messages .msg-customer", "Avant la coupure")
        .await;

    // It comes back (same data, same port): the page reconnects by itself,
    // re-syncs and receives live again; the draft is still there.
    let restarted = Server::start_in(dir, &fixed, &[]);
    restarted.adopt_visitors(&server);
    let server = restarted;
    alice
        .until_js(
            "the page to reconnect",
            "document.getElementById('conn').dataset.state === 'online'",
        )
        .await;
    server
        .customer_says("v-net", "Paul Durand", "Après la coupure")
        .await;
    alice
        .shown_with_text("#messages .msg-customer", "Après la coupure")
        .await;
    alice
        .shown_with_text("#messages .msg-agent", "Je suis là")
        .await;
    assert_eq!(
        alice
            .js("return document.getElementById('compose').value")
            .await,
        "brouillon en cours"
    );

    // A server that does not know the session (its data is gone): the
    // login comes back with a clear message, the screen stays until then.
    drop(server);
    let _fresh = Server::start_in(Server::new_dir("browser-fresh"), &fixed, &[]);
    alice
        .shown_with_text("#login-message", "no longer valid")
        .await;
    assert!(alice.html().await.contains("Avant la coupure"));
    alice.screenshot("session-expired").await;
    alice.log_in_dialog("alice").await;
    alice.gone("#session-banner").await;
    alice.close().await;
}

#[tokio::test]
async fn pages_are_served_with_a_strict_content_security_policy() {
    let server = Server::start(&demo_config());
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/chat/demo", "text/html; charset=utf-8"),
        ("/assets/desktop.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
    ] {
        let resp = server
            .http
            .get(server.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let h = resp.headers();
        assert_eq!(h["content-type"], ty, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{csp}"
        );
    }
    let resp = server
        .http
        .get(server.url("/chat/no-such-tenant"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messenger_customers_picture_is_shown_inline_and_a_location_with_its_coordinates() {
    let (graph_base, _graph) = graph::start().await;
    let server = Server::start_with_env(
        &demo_config(),
        &[("SWITCHBOARD_GRAPH_API_BASE", &graph_base)],
    );
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-attachments", &server.base, "alice")
        .await;
    let body = serde_json::json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": [
        {"sender": {"id": "PSID-PIC"}, "recipient": {"id": "1000"}, "timestamp": 1,
         "message": {"mid": "m.pic", "text": "look", "attachments": [
            {"type": "image", "payload": {"url": format!("{graph_base}/cdn/photo.png")}},
            {"type": "file", "payload": {"url": format!("{graph_base}/cdn/doc.pdf")}},
            {"type": "location", "title": "Home", "payload": {"coordinates": {"lat": 48.8566, "long": 2.3522}}}
         ]}}
    ]}]})
    .to_string();
    let resp = server
        .http
        .post(server.url("/channels/messenger/demo/webhook"))
        .header(
            "X-Hub-Signature-256",
            messenger_signature(&body, "demo-secret"),
        )
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status().as_u16(), 200);
    let id = first_offer(&alice).await;
    alice.accept_offer(id).await;
    alice
        .shown_with_text("#messages .msg-customer .text", "look")
        .await;
    // The picture is fetched with the agent's token and shown from a blob:
    // URL, decoded (a broken image has no natural width).
    alice
        .until_js(
            "the picture shown inline",
            "(function () { var i = document.querySelector('#messages .msg-customer img.att-thumb'); \
             return i && i.src.indexOf('blob:') === 0 && i.complete && i.naturalWidth > 0 \
             && i.parentElement.getAttribute('href') === i.src; })()",
        )
        .await;
    alice
        .shown_with_text("#messages .att-file .att-download", "doc.pdf")
        .await;
    alice
        .shown_with_text("#messages .att-location .att-coords", "48.85660, 2.35220")
        .await;
    alice
        .shown_with_text("#messages .att-location", "Home")
        .await;
    alice.screenshot("attachments").await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_in_the_composer_inserts_a_canned_response() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-canned", &server.base, "alice")
        .await;
    let id = server.customer_says("v-canned", "Jeanne", "hi").await;
    alice.accept_offer(id).await;
    alice
        .shown_with_text("#messages .msg-customer .text", "hi")
        .await;
    alice.type_in("#compose", "/greet").await;
    alice
        .shown_with_text("#canned .canned-item", "Greeting")
        .await;
    alice.screenshot("canned").await;
    alice.type_in("#compose", ENTER).await;
    let want = "Hello Jeanne, this is Alice Martin from Support. How can I help you today?";
    alice
        .until_js(
            "the response inserted",
            &format!("document.getElementById('compose').value === {want:?}"),
        )
        .await;
    assert!(
        alice
            .js("return document.getElementById('canned').hidden")
            .await
            == serde_json::Value::Bool(true)
    );
    // Still editable, then sent as edited.
    alice.type_in("#compose", " :)").await;
    alice.type_in("#compose", ENTER).await;
    alice
        .shown_with_text("#messages .msg-agent .text", &format!("{want} :)"))
        .await;
    alice.close().await;
}

/// The demo tenant with a supervisor, `sam` (password `demo`).
/// The demo tenant with `ada`, an agent of role `admin`.
fn config_with_admin() -> String {
    demo_config().replace(
        "[tenants.webchat]\nsource = \"Web chat\"",
        "[[tenants.agents]]\nid = \"ada\"\nname = \"Ada Admin\"\npassword = \"demo\"\nqueues = []\nrole = \"admin\"\n\n[tenants.webchat]\nsource = \"Web chat\"",
    )
}

fn config_with_supervisor() -> String {
    demo_config().replace(
        "[tenants.webchat]\nsource = \"Web chat\"",
        "[[tenants.agents]]\nid = \"sam\"\nname = \"Sam Super\"\npassword = \"demo\"\nqueues = []\nrole = \"supervisor\"\n\n[tenants.webchat]\nsource = \"Web chat\"",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_monitors_closes_and_logs_out_from_the_console_and_the_desktop_follows() {
    let server = Server::start(&config_with_supervisor());
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-supervised", &server.base, "alice")
        .await;
    let id = server
        .customer_says("v-sup", "Ana Gomez", "card 4111 1111 1111 1111")
        .await;
    alice.accept_offer(id).await;
    alice.shown("#btn-end").await;

    let sam = driver.open("sam-console").await;
    sam.login(&server.base, "sam").await;
    sam.goto(&format!("{}/console", server.base)).await;
    let row = format!("#convs tr[data-id=\"{id}\"]");
    sam.click(&format!("{row} button[data-action=\"monitor\"]"))
        .await;
    sam.shown_with_text("#monitor-log", "************1111")
        .await;
    assert!(!sam.text("#monitor-log").await.contains("4111 1111"));

    sam.click(&format!("{row} button[data-action=\"close\"]"))
        .await;
    sam.type_in("#close-reason", "Customer left hours ago")
        .await;
    sam.click("#close-form button[type=\"submit\"]").await;
    alice
        .shown_with_text("#messages", "Closed by Sam Super: Customer left hours ago")
        .await;
    alice.shown("#wrapup-dialog").await;
    alice
        .click("#wrapup-list .pick-item[data-id=\"other\"]")
        .await;
    alice.click("#wrapup-submit").await;
    sam.screenshot("console-actions").await;

    sam.click("#agents tr[data-id=\"alice\"] button[data-action=\"forceLogout\"]")
        .await;
    alice.shown("#login-dialog").await;
    sam.close().await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_customers_history_is_shown_with_its_transcript_masked() {
    let server = Server::start(&demo_config());
    // A first conversation, handled to the end over the API.
    let mut api = AgentClient::login(&server, "alice").await;
    api.available().await;
    let first = server
        .customer_says("v-back", "Jeanne", "my card 4111 1111 1111 1111")
        .await;
    api.events.next_of("offer").await;
    api.ok(
        &format!("/api/conversations/{first}/accept"),
        serde_json::json!({}),
    )
    .await;
    api.ok(
        &format!("/api/conversations/{first}/end"),
        serde_json::json!({}),
    )
    .await;
    let w = api.events.next_of("wrapup_required").await;
    let label = w["reasons"][0]["label"]
        .as_str()
        .expect("label")
        .to_string();
    api.ok(
        &format!("/api/conversations/{first}/wrapup"),
        serde_json::json!({"reason": w["reasons"][0]["code"]}),
    )
    .await;
    server.advance(3_600_001).await; // archived

    // She comes back: the desktop shows her history.
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-history", &server.base, "alice")
        .await;
    let again = server
        .customer_says("v-back", "Jeanne", "hello again")
        .await;
    alice.accept_offer(again).await;
    alice
        .shown_with_text("#history .history-summary", "Alice Martin")
        .await;
    alice
        .shown_with_text("#history .history-summary", &label)
        .await;
    alice.click("#history .history-item button").await;
    alice
        .shown_with_text("#history .history-transcript", "my card ************1111")
        .await;
    let html = alice.html().await;
    assert!(
        !html.contains("4111 1111 1111 1111"),
        "raw card on the page"
    );
    alice.screenshot("history").await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reply_shows_why_and_retry_sends_it() {
    let (graph_base, graph) = graph::start().await;
    *graph.refuse_sends.lock().expect("lock") = 1;
    let server = Server::start_with_env(
        &demo_config(),
        &[("SWITCHBOARD_GRAPH_API_BASE", &graph_base)],
    );
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-retry", &server.base, "alice")
        .await;
    server
        .messenger_says("PSID-RETRY", "m.retry", "where is my parcel?")
        .await;
    let id = first_offer(&alice).await;
    alice.accept_offer(id).await;
    alice
        .type_in("#compose", &format!("It left this morning{ENTER}"))
        .await;
    // Meta refuses it: the bubble says so, with why, and offers Retry.
    alice
        .shown_with_text(
            "#messages .msg-failed .delivery-failed",
            "the channel refused it",
        )
        .await;
    assert!(graph.sent.lock().expect("lock").is_empty());
    alice.click("#messages .msg-failed .retry").await;
    alice
        .until("the retried reply to reach Messenger", || async {
            graph
                .sent
                .lock()
                .expect("lock")
                .iter()
                .any(|c| c.body["message"]["text"] == "It left this morning")
                .then_some(())
        })
        .await;
    alice.gone("#messages .msg-failed .retry").await;
    alice.screenshot("retry").await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_writing_in_a_conversation_not_on_screen_is_notified_masked() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver.open("alice-notify").await;
    alice.login(&server.base, "alice").await;
    alice.js(RECORD_NOTIFICATIONS).await;
    alice.set_available().await;
    let first = server.customer_says("v-n1", "Paul", "hello").await;
    alice.accept_offer(first).await;
    let second = server.customer_says("v-n2", "Anna", "bonjour").await;
    alice.accept_offer(second).await;
    // Back to the first one; the second customer writes.
    alice
        .click(&format!(
            "#conv-list li[data-conversation=\"{first}\"] button"
        ))
        .await;
    alice
        .shown_with_text("#messages .msg-customer .text", "hello")
        .await;
    alice.js("window.__notes = []; return true;").await;
    server
        .customer_says("v-n2", "Anna", "my card 4111 1111 1111 1111")
        .await;
    alice
        .until_js(
            "a notification of Anna's message",
            "window.__notes.some(function (n) { return n.title === 'New message from Anna'; })",
        )
        .await;
    let body = alice
        .js("return window.__notes.find(function (n) { return n.title === 'New message from Anna'; }).body")
        .await;
    assert_eq!(body, "my card ************1111", "masked like the bubble");
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_picked_while_an_accept_is_on_its_way_stays_on_screen() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-pick", &server.base, "alice")
        .await;
    let first = server.customer_says("v-p1", "Paul", "hello").await;
    alice.accept_offer(first).await;
    // The next accept's answer is held back (a slow network) while the
    // agent goes back to the first conversation.
    alice
        .js("window.__release = null; var f = window.fetch; \
             window.fetch = function (u, o) { \
               var p = f(u, o); \
               if (String(u).indexOf('/accept') < 0) return p; \
               return new Promise(function (ok) { window.__release = function () { \
                 ok(p); \
                 p.then(function (r) { return r.clone().text(); }).then(function () { \
                   setTimeout(function () { window.__answered = true; }, 200); }); \
               }; }); \
             }; return true;")
        .await;
    let second = server.customer_says("v-p2", "Anna", "bonjour").await;
    alice
        .click(&format!("{} .offer-accept", Page::offer(second)))
        .await;
    alice
        .until_js(
            "the accept to be sent",
            "typeof window.__release === 'function'",
        )
        .await;
    alice
        .click(&format!(
            "#conv-list li[data-conversation=\"{first}\"] button"
        ))
        .await;
    alice.js("window.__release(); return true;").await;
    alice
        .shown(&format!("#conv-list li[data-conversation=\"{second}\"]"))
        .await;
    alice
        .until_js(
            "the accept's answer to be applied",
            "window.__answered === true && !document.querySelector('#offers .offer')",
        )
        .await;
    alice.text_is("#pane-title", "Paul").await;
    let shown = alice
        .js("return document.getElementById('pane').dataset.conversation")
        .await;
    assert_eq!(shown, first.to_string(), "the agent's own choice stays");
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_chat_visitor_attaches_a_picture_that_the_agent_sees_inline() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-upload", &server.base, "alice")
        .await;
    let customer = driver.open("visitor-upload").await;
    customer.goto(&server.url("/chat/demo")).await;
    customer.shown("#chat-attach").await;
    // The visitor picks a picture (a file chooser cannot be driven
    // headless: the same File goes in through the input's own API).
    let png: Vec<String> = graph::PNG.iter().map(|b| b.to_string()).collect();
    customer
        .js(&format!(
            "var dt = new DataTransfer(); \
             dt.items.add(new File([new Uint8Array([{}])], 'photo.png', {{type: 'image/png'}})); \
             var i = document.getElementById('chat-file'); i.files = dt.files; \
             i.dispatchEvent(new Event('change')); return true;",
            png.join(",")
        ))
        .await;
    customer
        .shown_with_text("#chat-log .msg-mine .att-file", "photo.png")
        .await;
    let id = first_offer(&alice).await;
    alice.accept_offer(id).await;
    alice
        .until_js(
            "the visitor's picture shown inline",
            "(function () { var i = document.querySelector('#messages .msg-customer img.att-thumb'); \
             return i && i.src.indexOf('blob:') === 0 && i.complete && i.naturalWidth > 0; })()",
        )
        .await;
    alice.screenshot("webchat-upload").await;
    customer.close().await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_attaches_a_picture_that_the_visitor_sees_inline() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-attach", &server.base, "alice")
        .await;
    let customer = driver.open("visitor-attach").await;
    customer.goto(&server.url("/chat/demo")).await;
    customer
        .type_in("#chat-input", "can you send me the form?")
        .await;
    customer.click("#chat-send").await;
    let id = first_offer(&alice).await;
    alice.accept_offer(id).await;
    // The button is named for screen readers (its label).
    let label = alice.text("label[for='attach-file']").await;
    assert_eq!(label, "Attach a file");
    let unnamed = alice.js(UNNAMED_CONTROLS).await;
    assert_eq!(unnamed, serde_json::json!([]), "unnamed controls");
    // The agent picks a picture (through the input's own API, as a file
    // chooser cannot be driven headless) and sends it without text.
    let png: Vec<String> = graph::PNG.iter().map(|b| b.to_string()).collect();
    alice
        .js(&format!(
            "var dt = new DataTransfer(); \
             dt.items.add(new File([new Uint8Array([{}])], 'form.png', {{type: 'image/png'}})); \
             var i = document.getElementById('attach-file'); i.files = dt.files; \
             i.dispatchEvent(new Event('change')); return true;",
            png.join(",")
        ))
        .await;
    alice.shown_with_text("#pending-files li", "form.png").await;
    alice.click("#send").await;
    alice.gone("#pending-files li").await;
    alice
        .until_js(
            "the agent's own picture in their bubble",
            "(function () { var i = document.querySelector('#messages .msg-agent img.att-thumb'); \
             return i && i.src.indexOf('blob:') === 0 && i.complete && i.naturalWidth > 0; })()",
        )
        .await;
    customer
        .until_js(
            "the agent's picture shown inline to the visitor",
            "(function () { var i = document.querySelector('#chat-log .msg-agent-reply img.att-picture'); \
             return i && i.complete && i.naturalWidth > 0; })()",
        )
        .await;
    customer.screenshot("webchat-agent-picture").await;
    customer.close().await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitor_sees_the_agent_typing_and_the_agent_sees_the_visitor_typing() {
    let server = Server::start(&demo_config());
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-typing", &server.base, "alice")
        .await;
    let customer = driver.open("visitor-typing").await;
    customer.goto(&server.url("/chat/demo")).await;
    customer.type_in("#chat-name", "Lea").await;
    customer
        .type_in("#chat-input", &format!("hello{ENTER}"))
        .await;
    let id = first_offer(&alice).await;
    alice.accept_offer(id).await;
    customer
        .until_js(
            "the chat socket to be open",
            "document.getElementById('chat-conn').dataset.state === 'online'",
        )
        .await;
    // The agent types (without sending): the visitor's page says so.
    alice.type_in("#compose", "Let me see").await;
    customer
        .shown_with_text("#chat-typing", "Alice Martin is typing…")
        .await;
    // The visitor types: the agent's pane says so.
    customer.type_in("#chat-input", "one more").await;
    alice.shown_with_text("#typing", "Lea is typing…").await;
    alice.screenshot("typing").await;
    customer.close().await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_charts_the_days_volume_per_hour() {
    let server = Server::start(&config_with_supervisor());
    server.customer_says("v-h1", "One", "hello").await;
    server.customer_says("v-h2", "Two", "hello").await;
    let driver = Driver::start().await;
    let sam = driver.open("sam-reports").await;
    sam.login(&server.base, "sam").await;
    sam.goto(&format!("{}/console", server.base)).await;
    // Today's report (UTC day): the two conversations in the hourly bars.
    sam.click("#report-form button[type=\"submit\"]").await;
    sam.until_js(
        "two offered in the hourly bars",
        "Array.from(document.querySelectorAll('#report-hours rect')) \
         .reduce(function (n, r) { return n + Number(r.dataset.offered || 0); }, 0) === 2",
    )
    .await;
    sam.js("document.getElementById('report-queues').scrollIntoView(); return true;")
        .await;
    sam.screenshot("console-hours").await;
    sam.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_reads_and_reloads_the_scripts_from_the_console() {
    let server = Server::start(&config_with_admin());
    // A candidate policy tried beside the live one: the console says so.
    let (status, _) = server
        .admin(
            Method::PUT,
            "/admin/tenants/demo/shadow",
            Some(serde_json::json!({"routing": "routing/skills.lua"})),
        )
        .await;
    assert_eq!(status, 200);
    let driver = Driver::start().await;
    let ada = driver.open("ada-scripts").await;
    ada.login(&server.base, "ada").await;
    ada.goto(&format!("{}/console", server.base)).await;
    ada.shown_with_text("#scripts", "routing/longest_idle.lua")
        .await;
    ada.shown_with_text("#scripts-shadow", "Shadow policy routing/skills.lua")
        .await;
    ada.click("#scripts tr[data-id=\"routing/longest_idle.lua\"] button")
        .await;
    ada.shown_with_text("#script-source", "function").await;
    ada.click("#scripts-reload").await;
    ada.shown_with_text("#action-status", "generation 2").await;
    ada.screenshot("console-scripts").await;
    ada.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_an_agent_from_the_console_who_then_logs_in_on_the_desktop() {
    let server = Server::start(&config_with_admin());
    let driver = Driver::start().await;
    let ada = driver.open("ada-admin").await;
    ada.login(&server.base, "ada").await;
    ada.goto(&format!("{}/console", server.base)).await;
    ada.shown_with_text("#admin-agents", "alice").await;
    ada.click("#agent-new").await;
    ada.type_in("#agent-id", "dora").await;
    ada.type_in("#agent-name", "Dora Neuve").await;
    ada.type_in("#agent-queues", "support").await;
    ada.type_in("#agent-skills", "fr, en").await;
    ada.type_in("#agent-password", "dora-secret-1").await;
    ada.click("#agent-form button[type=submit]").await;
    ada.shown_with_text("#admin-agents tr[data-id=\"dora\"]", "Dora Neuve")
        .await;
    ada.screenshot("console-admin").await;

    // Dora logs in on the desktop with the password the admin set.
    let dora = driver.open("dora-desktop").await;
    dora.goto(&format!("{}/", server.base)).await;
    let tenant = dora.shown("#login-tenant").await;
    tenant.clear().await.expect("clear tenant");
    tenant.send_keys("demo").await.expect("type tenant");
    let who = dora.shown("#login-agent").await;
    who.clear().await.expect("clear agent");
    who.send_keys("dora").await.expect("type agent");
    dora.type_in("#login-password", &format!("dora-secret-1{ENTER}"))
        .await;
    dora.gone("#login-dialog").await;
    dora.until_js(
        "the desktop to be connected",
        "document.getElementById('conn').dataset.state === 'online'",
    )
    .await;

    // Disabled from the console: the desktop loses its session.
    ada.click("#admin-agents tr[data-id=\"dora\"] button[data-action=\"disable\"]")
        .await;
    ada.shown_with_text("#admin-agents tr[data-id=\"dora\"]", "No")
        .await;
    dora.close().await;
    ada.close().await;
}

/// A signed Messenger `read` webhook for `psid` (watermark in ms).
async fn messenger_read(server: &Server, psid: &str, watermark: u64) {
    let body =
        serde_json::json!({"object": "page", "entry": [{"id": "1000", "time": 1, "messaging": [
            {"sender": {"id": psid}, "recipient": {"id": "1000"}, "timestamp": watermark,
             "read": {"watermark": watermark}}
        ]}]})
        .to_string();
    assert_eq!(server.messenger_deliver(&body).await.0, 200);
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_messenger_reply_shows_two_ticks_and_the_reply_window_counts_down_then_closes() {
    const HOUR: u64 = 3_600_000;
    let (graph_base, graph) = graph::start().await;
    // Without the HUMAN_AGENT tag: the 24-hour window.
    let no_tag = demo_config().replace("human_agent_tag = true", "human_agent_tag = false");
    let server = Server::start_with_env(&no_tag, &[("SWITCHBOARD_GRAPH_API_BASE", &graph_base)]);
    let driver = Driver::start().await;
    let alice = driver
        .available_agent("alice-receipts", &server.base, "alice")
        .await;
    server
        .messenger_says("PSID-TICKS", "m.ticks", "is my order on its way?")
        .await;
    let id = first_offer(&alice).await;
    alice.accept_offer(id).await;
    // Opening the conversation told Messenger the customer was seen.
    alice
        .until("mark_seen to reach Messenger", || async {
            graph
                .actions
                .lock()
                .expect("lock")
                .iter()
                .any(|c| c.body["sender_action"] == "mark_seen")
                .then_some(())
        })
        .await;
    alice
        .shown_with_text("#reply-window", "Reply window closes in 2")
        .await;
    alice
        .type_in("#compose", &format!("It ships today{ENTER}"))
        .await;
    alice
        .shown_with_text("#messages .msg-agent", "It ships today")
        .await;
    assert_eq!(
        alice
            .js("return document.querySelectorAll('#messages .msg-agent .receipt').length")
            .await,
        0,
        "no mark before a receipt"
    );

    // The customer reads it: two ticks, and the word for screen readers.
    messenger_read(&server, "PSID-TICKS", wall_ms() + HOUR).await;
    alice.shown("#messages .msg-agent .receipt-read").await;
    assert_eq!(
        alice
            .js("return document.querySelector('#messages .msg-agent .receipt-read .sr-only').textContent")
            .await,
        "Read"
    );

    // 23 h 30 min later (server clock): a second reply, read: the
    // countdown is a warning.
    server.advance(23 * HOUR + HOUR / 2).await;
    alice
        .type_in("#compose", &format!("Tracking is on its way{ENTER}"))
        .await;
    alice
        .shown_with_text("#messages .msg-agent", "Tracking is on its way")
        .await;
    messenger_read(&server, "PSID-TICKS", wall_ms() + 25 * HOUR).await;
    alice
        .until_js(
            "both replies read",
            "document.querySelectorAll('#messages .msg-agent .receipt-read').length === 2",
        )
        .await;
    alice
        .until_js(
            "the countdown to warn",
            "document.getElementById('reply-window').dataset.state === 'warn'",
        )
        .await;
    alice.shown_with_text("#reply-window", " min").await;
    alice.screenshot("reply-window-warning").await;

    // An hour more: the window is closed and the composer with it (a new
    // offer brings the server's time to the page).
    server.advance(HOUR).await;
    server
        .messenger_says("PSID-OTHER", "m.other", "hello there")
        .await;
    alice
        .until_js(
            "the window to close",
            "document.getElementById('reply-window').dataset.state === 'closed'",
        )
        .await;
    alice
        .shown_with_text("#reply-window", "Reply window closed")
        .await;
    alice
        .until_js(
            "the composer to be disabled",
            "document.getElementById('compose').disabled && document.getElementById('send').disabled",
        )
        .await;
    alice.screenshot("reply-window-closed").await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_sees_a_new_conversation_appear_in_the_live_view() {
    let server = Server::start(&config_with_supervisor());
    let driver = Driver::start().await;
    let sam = driver.open("sam-live").await;
    sam.login(&server.base, "sam").await;
    sam.goto(&format!("{}/console", server.base)).await;
    sam.shown_with_text("#conn", "Connected").await;
    assert_eq!(
        sam.js("return document.querySelectorAll('#convs tbody tr').length")
            .await
            .as_u64(),
        Some(0),
        "nothing waits yet"
    );
    // A customer writes: the row appears over the socket, no reload.
    sam.js("window.__sameDocument = true; return true;").await;
    let id = server
        .customer_says("v-live", "Lena Live", "hello there")
        .await;
    // Waited for with its text: the live console may redraw the row
    // between finding it and reading it (a stale element).
    sam.shown_with_text(&format!("#convs tr[data-id=\"{id}\"]"), "support")
        .await;
    assert_eq!(
        sam.js("return window.__sameDocument === true").await,
        serde_json::json!(true),
        "the page was not reloaded"
    );
    // The queue's waiting count follows too.
    sam.until_js(
        "one waiting in support",
        "Array.from(document.querySelectorAll('#queues tbody tr')) \
         .some(function (tr) { return tr.cells[0].textContent === 'Support' && tr.cells[1].textContent === '1'; })",
    )
    .await;
    sam.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_downloads_the_reports_as_csv() {
    let server = Server::start(&config_with_supervisor());
    server.customer_says("v-csv", "Cora", "hello").await;
    let driver = Driver::start().await;
    let sam = driver.open("sam-csv").await;
    sam.login(&server.base, "sam").await;
    sam.goto(&format!("{}/console", server.base)).await;
    // What the button hands to the browser: the file's name, type and
    // content (the download itself is kept from leaving the page).
    sam.js(
        "window.__downloads = []; \
         var made = URL.createObjectURL; \
         URL.createObjectURL = function (blob) { \
           var url = made.call(URL, blob); \
           blob.text().then(function (text) { window.__downloads.push({url: url, type: blob.type, text: text}); }); \
           return url; \
         }; \
         HTMLAnchorElement.prototype.click = function () { window.__clicked = {href: this.href, name: this.download}; }; \
         return true;",
    )
    .await;
    sam.click("#report-form button[type=\"submit\"]").await;
    sam.click("#csv-queues").await;
    sam.until_js(
        "the queues CSV downloaded",
        "window.__downloads.length === 1 && !!window.__clicked",
    )
    .await;
    let got = sam
        .js("return [window.__downloads[0], window.__clicked]")
        .await;
    let (file, clicked) = (&got[0], &got[1]);
    assert!(
        file["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("text/csv")),
        "{file}"
    );
    assert_eq!(clicked["name"], "queues.csv");
    assert_eq!(clicked["href"], file["url"], "the link is the CSV");
    let text = file["text"].as_str().expect("csv text");
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("queue,offered,accepted,dropped,rona")),
        "{text}"
    );
    assert!(
        lines.any(|l| l.starts_with("support,1,0,0,0,0,")),
        "today's conversation is counted: {text}"
    );
    sam.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_leaves_the_chat_and_the_supervisor_sees_it_abandoned() {
    let server = Server::start(&config_with_supervisor());
    let driver = Driver::start().await;
    let sam = driver.open("sam-leave").await;
    sam.login(&server.base, "sam").await;
    sam.goto(&format!("{}/console", server.base)).await;
    sam.shown_with_text("#conn", "Connected").await;

    // Nobody is available: the visitor's conversation waits.
    let customer = driver.open("visitor-leave").await;
    customer.goto(&server.url("/chat/demo")).await;
    customer.gone("#chat-leave").await;
    customer.type_in("#chat-name", "Lou").await;
    customer
        .type_in("#chat-input", &format!("is anyone there?{ENTER}"))
        .await;
    customer.shown("#chat-leave").await;
    // Waited for with its text: the live console may redraw the row
    // between finding it and reading it (a stale element).
    sam.shown_with_text("#convs tbody tr", "queued").await;
    let id: u64 = sam
        .js("return Number(document.querySelector('#convs tbody tr').dataset.id)")
        .await
        .as_u64()
        .expect("the row's conversation");

    // The visitor leaves: the page says so, the button goes.
    customer.click("#chat-leave").await;
    customer
        .shown_with_text("#chat-log .msg-system", "You left the chat.")
        .await;
    customer.gone("#chat-leave").await;
    assert_eq!(
        customer
            .js("return document.querySelectorAll('#chat-log .msg-system').length")
            .await
            .as_u64(),
        Some(1),
        "said once: {}",
        customer.visible_text().await
    );
    customer.screenshot("chat-left").await;
    // In French too.
    customer.choose("#lang", "fr").await;
    customer
        .shown_with_text("#chat-log .msg-system", "Vous avez quitté la discussion.")
        .await;

    // The supervisor's live view drops it, and the report counts it
    // abandoned.
    sam.gone(&format!("#convs tr[data-id=\"{id}\"]")).await;
    sam.until_js(
        "nobody waiting in support",
        "Array.from(document.querySelectorAll('#queues tbody tr')) \
         .some(function (tr) { return tr.cells[0].textContent === 'Support' && tr.cells[1].textContent === '0'; })",
    )
    .await;
    sam.click("#report-form button[type=\"submit\"]").await;
    sam.until_js(
        "support's report counts one abandoned",
        "Array.from(document.querySelectorAll('#report-queues tbody tr')) \
         .some(function (tr) { return tr.cells[0].textContent === 'support' && tr.cells[3].textContent === '1'; })",
    )
    .await;
    sam.close().await;
    customer.close().await;
}
