//! Masking throughput on generated chat corpora (deterministic: a small
//! seeded PRNG, no `rand` dependency).
//!
//! Three corpora of chat lines (~200 bytes, French and English):
//! - `clean`: no digit and no `@` (the fast path);
//! - `mixed`: everyday chat with times, prices, dates and order numbers,
//!   about a third of the lines holding one sensitive item;
//! - `dense`: every line full of numbers, several of them sensitive;
//! - `typographic`: `mixed` as French phones type it (no-break spaces,
//!   typographic apostrophes, a few zero-width spaces): the normalized
//!   view's path.
//!
//! Group `bytes` reports MB/s, group `messages` messages per second.
//! Run: `cargo bench -p switchboard-core --bench masking -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_core::masking::Masker;

/// xorshift64*: enough randomness to vary the corpus, fully deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const CLEAN: &[&str] = &[
    "Bonjour, je n'arrive pas à me connecter à mon espace client depuis hier soir.",
    "Hello, I would like to know why my last invoice is higher than usual, thanks.",
    "Merci beaucoup pour votre aide, c'est très apprécié ! 🙂",
    "Could you please check the status of my order? It still says pending.",
    "Le colis n'est toujours pas arrivé, pouvez-vous vérifier auprès du transporteur ?",
    "I have tried resetting my password but the email never arrives.",
    "Est-ce que je peux changer l'adresse de livraison avant l'expédition ?",
    "Great, that worked perfectly. Have a nice day! 👍",
    "Je souhaiterais résilier mon abonnement à la fin du mois, comment faire ?",
    "The app keeps crashing when I open the settings page on my phone.",
];

const DECOYS: &[&str] = &[
    "Je suis disponible demain à 14h30 ou vendredi à 10:15.",
    "I paid $1,299.00 on 2024-03-15 but was charged twice.",
    "La facture du 15/03/2024 indique 12,99 € au lieu de 9,99 €.",
    "My order #A12345678 was supposed to arrive on 15.03.2024.",
    "Le suivi 1Z999AA10123456784 n'a pas bougé depuis 3 jours.",
    "We live at 221B Baker Street, London NW1 6XE, since 2019.",
    "J'ai commandé 2 x 250 g et reçu 1 seul paquet, code postal 75008.",
    "Total: 1 299,00 € TTC, livraison sous 48h.",
];

const SENSITIVE: &[&str] = &[
    "Ma carte 4111 1111 1111 1111 a été débitée deux fois.",
    "You can reach me at +44 7966 197542 after 6pm.",
    "Mon numéro est le 06 12 34 56 78, rappelez-moi svp.",
    "Please send the receipt to melissa.jones@gmail.com, thanks.",
    "Voici mon IBAN : FR76 3000 6000 0112 3456 7890 189 pour le remboursement.",
    "My SSN is 123-45-6789 if you need it for verification.",
    "Call me on (415) 555-2671 anytime tomorrow.",
    "Écrivez-moi à jean-pierre.dupont@orange.fr pour la suite.",
];

const DENSE: &[&str] = &[
    "4111 1111 1111 1111",
    "4111 1111 1111 1112",
    "+33 6 12 34 56 78",
    "06.12.34.56.78",
    "123-45-6789",
    "2024-03-15",
    "12,99 €",
    "14h30",
    "DE89 3704 0044 0532 0130 00",
    "FR76 3000 6000 0112 3456 7890 188",
    "a.b@c.de",
    "1 299,00",
    "75008",
    "#A12345678",
    "(123) 456-7890",
    "0612345678",
];

/// A line of about 200 bytes built from `parts`, then padded with clean text.
fn line(rng: &mut Rng, mut parts: impl FnMut(&mut Rng) -> String) -> String {
    let mut s = String::new();
    while s.len() < 180 {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(&parts(rng));
    }
    s
}

fn corpus_clean(n: usize) -> Vec<String> {
    let mut rng = Rng(0x5EED_0001);
    (0..n)
        .map(|_| line(&mut rng, |r| r.pick(CLEAN).to_owned()))
        .collect()
}

fn corpus_mixed(n: usize) -> Vec<String> {
    let mut rng = Rng(0x5EED_0002);
    (0..n)
        .map(|k| {
            let sensitive = k % 3 == 0;
            let mut first = true;
            line(&mut rng, |r| {
                let part = if sensitive && first {
                    r.pick(SENSITIVE)
                } else if r.below(2) == 0 {
                    r.pick(DECOYS)
                } else {
                    r.pick(CLEAN)
                };
                first = false;
                part.to_owned()
            })
        })
        .collect()
}

fn corpus_dense(n: usize) -> Vec<String> {
    let mut rng = Rng(0x5EED_0003);
    (0..n)
        .map(|_| line(&mut rng, |r| format!("{} et", r.pick(DENSE))))
        .collect()
}

/// The mixed corpus as a French phone types it: no-break spaces before
/// `:;!?` and inside numbers, typographic apostrophes, and in a tenth of
/// the sensitive items a zero-width space: every line needs the
/// normalized view.
fn corpus_typographic(n: usize) -> Vec<String> {
    corpus_mixed(n)
        .into_iter()
        .enumerate()
        .map(|(k, l)| {
            let l = l
                .replace(" :", "\u{a0}:")
                .replace(" ?", "\u{a0}?")
                .replace(" !", "\u{a0}!")
                .replace('\'', "\u{2019}")
                .replace("4111 1111 1111 1111", "4111\u{a0}1111\u{a0}1111\u{a0}1111")
                .replace(
                    "06 12 34 56 78",
                    "06\u{202f}12\u{202f}34\u{202f}56\u{202f}78",
                );
            if k % 30 == 0 {
                l.replacen("3000 6000", "3000\u{200b}6000", 1)
            } else {
                l
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let masker = Masker::default();
    let corpora = [
        ("clean", corpus_clean(2000)),
        ("mixed", corpus_mixed(2000)),
        ("dense", corpus_dense(2000)),
        ("typographic", corpus_typographic(2000)),
    ];
    // Sanity: the mixed corpus holds items to mask in about a third of its lines.
    let masked = corpora[1]
        .1
        .iter()
        .filter(|l| !masker.find(l).is_empty())
        .count();
    assert!(
        (600..=800).contains(&masked),
        "{masked} mixed lines with an item"
    );

    let mut bytes = c.benchmark_group("bytes");
    for (name, lines) in &corpora {
        let total: usize = lines.iter().map(String::len).sum();
        bytes.throughput(Throughput::Bytes(total as u64));
        bytes.bench_function(*name, |b| {
            b.iter(|| {
                for l in lines {
                    black_box(masker.mask(black_box(l)));
                }
            })
        });
    }
    bytes.finish();

    let mut msgs = c.benchmark_group("messages");
    for (name, lines) in &corpora {
        msgs.throughput(Throughput::Elements(lines.len() as u64));
        msgs.bench_function(*name, |b| {
            b.iter(|| {
                for l in lines {
                    black_box(masker.mask(black_box(l)));
                }
            })
        });
    }
    msgs.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
