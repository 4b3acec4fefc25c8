//! Hostile input and determinism: every malformed field gets its reject and nothing panics;
//! the same commands give the same outcomes, live or replayed from the journal.

use super::*;

/// Reasons `apply` re-checks: a malformed command that reached the journal is refused there too.
const STRUCTURAL: [RejectReason; 8] = [
    RejectReason::UnknownSymbol,
    RejectReason::InvalidSide,
    RejectReason::InvalidOrderType,
    RejectReason::InvalidQuantity,
    RejectReason::InvalidPrice,
    RejectReason::DuplicateClOrdId,
    RejectReason::UnknownOrder,
    RejectReason::OrderFinal,
];

/// A harness with one resting order "open" of account A (10 at 10 000) and one filled "done".
fn seeded() -> Harness {
    let mut h = Harness::new();
    h.buy("A", "open", 10_000, 10);
    h.sell("A", "done", 10_100, 5);
    h.buy("B", "taker", 10_100, 5);
    h
}

#[test]
fn every_malformed_field_gets_its_reject_reason_and_nothing_panics() {
    let huge = "x".repeat(1 << 20);
    let base = || limit("A", "new", Side::Buy, 10_000, 1);
    let order = |change: &dyn Fn(&mut NewOrderRequest)| {
        let mut request = base();
        change(&mut request);
        new_order(request)
    };
    let mut cases: Vec<(Command, RejectReason)> = vec![
        (order(&|r| r.account = String::new()), RejectReason::InvalidAccount),
        (order(&|r| r.account.clone_from(&huge)), RejectReason::InvalidAccount),
        (order(&|r| r.cl_ord_id = String::new()), RejectReason::InvalidClOrdId),
        (order(&|r| r.cl_ord_id.clone_from(&huge)), RejectReason::InvalidClOrdId),
        (order(&|r| r.cl_ord_id = "open".into()), RejectReason::DuplicateClOrdId),
        (order(&|r| r.symbol = String::new()), RejectReason::UnknownSymbol),
        (order(&|r| r.symbol = "acme".into()), RejectReason::UnknownSymbol),
        (order(&|r| r.symbol.clone_from(&huge)), RejectReason::UnknownSymbol),
        (order(&|r| r.quantity = 0), RejectReason::InvalidQuantity),
        (order(&|r| r.quantity = -1), RejectReason::InvalidQuantity),
        (order(&|r| r.quantity = i64::MIN), RejectReason::InvalidQuantity),
        (order(&|r| r.quantity = i64::MAX), RejectReason::MaxQuantity),
        (order(&|r| r.price = 0), RejectReason::InvalidPrice),
        (order(&|r| r.price = -5), RejectReason::InvalidPrice),
        (order(&|r| r.price = i64::MIN), RejectReason::InvalidPrice),
        (order(&|r| r.price = i64::MAX), RejectReason::PriceOffTick),
        (order(&|r| r.price = i64::MAX - 2), RejectReason::PriceBand),
        (order(&|r| r.quantity = 1_000), RejectReason::MaxNotional),
        (order(&|r| r.side = Side::Sell as i32), RejectReason::Unspecified),
        (new_order(market("A", "m", Side::Buy, i64::MAX)), RejectReason::MaxQuantity),
        (
            new_order(NewOrderRequest {
                price: i64::MIN,
                ..market("A", "m", Side::Sell, 1)
            }),
            RejectReason::Unspecified,
        ),
        (cancel("A", "c", ""), RejectReason::UnknownOrder),
        (cancel("A", "c", &huge), RejectReason::UnknownOrder),
        (cancel("A", "c", "done"), RejectReason::OrderFinal),
        (cancel("A", "open", "open"), RejectReason::DuplicateClOrdId),
        (cancel(&huge, "c", "open"), RejectReason::InvalidAccount),
        (cancel("B", "c", "open"), RejectReason::UnknownOrder),
        (replace("A", "r", "open", 10_000, 0), RejectReason::InvalidQuantity),
        (replace("A", "r", "open", 10_000, i64::MIN), RejectReason::InvalidQuantity),
        (replace("A", "r", "open", 10_000, i64::MAX), RejectReason::MaxQuantity),
        (replace("A", "r", "open", 0, 10), RejectReason::InvalidPrice),
        (replace("A", "r", "open", i64::MIN, 10), RejectReason::InvalidPrice),
        (replace("A", "r", "open", i64::MAX, 10), RejectReason::PriceOffTick),
        (replace("A", "r", "done", 10_000, 10), RejectReason::OrderFinal),
        (replace("A", "r", &huge, 10_000, 10), RejectReason::UnknownOrder),
        (replace("A", "", "open", 10_000, 10), RejectReason::InvalidClOrdId),
        (kill_switch(&huge, true), RejectReason::InvalidAccount),
    ];
    for side in [0, 3, 99, -1, i32::MAX, i32::MIN] {
        cases.push((order(&|r| r.side = side), RejectReason::InvalidSide));
    }
    for order_type in [0, 3, -1, i32::MAX] {
        cases.push((order(&|r| r.order_type = order_type), RejectReason::InvalidOrderType));
    }
    for time_in_force in [2, -1, i32::MIN] {
        cases.push((order(&|r| r.time_in_force = time_in_force), RejectReason::InvalidOrderType));
    }
    for (command, expected) in cases {
        let mut h = seeded();
        let checked = h.engine.check(1, &command, h.now);
        let reason = checked.as_ref().err().map_or(RejectReason::Unspecified, |r| r.reason);
        let shown = format!("{command:?}").chars().take(200).collect::<String>();
        // Market orders against an empty side stop at NO_LIQUIDITY, after every other check.
        let reason = if reason == RejectReason::NoLiquidity {
            RejectReason::Unspecified
        } else {
            reason
        };
        assert_eq!(reason, expected, "{shown}");
        if let Err(reject) = checked {
            assert!(reject.text.len() < 300, "reject text too long: {}", reject.text);
            let report = reject.into_report(&command);
            assert_eq!(
                (exec_type(&report), status(&report), report.order_id),
                (ExecType::Reject, OrderStatus::Rejected, 0)
            );
        }
        // Replayed without check, structural errors are refused again and the rest is applied.
        let outcome = h.apply(1, command);
        let refused_again = exec_type(&outcome.response) == ExecType::Reject;
        if STRUCTURAL.contains(&expected) {
            assert_eq!(reject_reason(&outcome.response), expected, "{shown}");
        } else if refused_again {
            assert!(STRUCTURAL.contains(&reject_reason(&outcome.response)), "{shown}");
        }
    }
}

#[test]
fn notional_overflowing_i64_is_refused_not_wrapped() {
    let big = SymbolSpec {
        name: "BIG".into(),
        tick_size: 1,
        reference_price: i64::MAX / 2,
    };
    let permissive = Limits {
        price_band_percent: 100,
        max_order_quantity: i64::MAX,
        max_notional: i64::MAX,
        credit_limit: i64::MAX,
        position_limit: i64::MAX,
        ..limits()
    };
    let mut engine = Engine::new(vec![big], permissive);
    let order = |quantity| {
        new_order(NewOrderRequest {
            symbol: "BIG".into(),
            ..limit("A", "1", Side::Buy, i64::MAX / 2, quantity)
        })
    };
    // (2^62 - 1) * 2 fits in an i64; * 3 and * i64::MAX do not.
    assert_eq!(engine.check(1, &order(2), Instant::now()), Ok(()));
    for quantity in [3, i64::MAX] {
        assert_eq!(
            engine.check(1, &order(quantity), Instant::now()).map_err(|r| r.reason),
            Err(RejectReason::MaxNotional)
        );
    }
}

#[test]
fn extreme_orders_replayed_without_limits_saturate_instead_of_panicking() {
    let mut h = Harness::new();
    let top = i64::MAX - 2;
    h.apply(1, new_order(limit("A", "1", Side::Sell, 5, i64::MAX)));
    h.apply(1, new_order(limit("A", "2", Side::Sell, 5, i64::MAX)));
    assert_eq!(h.engine.top_of_book(ACME).map(|t| t.ask_quantity), Some(i64::MAX));
    h.apply(2, new_order(limit("B", "1", Side::Buy, top, i64::MAX)));
    h.apply(2, new_order(market("B", "2", Side::Buy, i64::MAX)));
    h.apply(2, new_order(market("B", "3", Side::Buy, i64::MAX)));
    assert_eq!(h.engine.position("B", ACME), i64::MAX);
    assert_eq!(h.engine.position("A", ACME), i64::MIN);
    h.apply(1, new_order(limit("A", "3", Side::Buy, top, i64::MAX)));
    h.apply(1, replace("A", "4", "3", 5, i64::MAX));
    h.apply(1, new_order(limit("C", "1", Side::Sell, 5, i64::MAX)));
    h.apply(1, new_order(limit("C", "2", Side::Buy, top, i64::MAX)));
    h.apply(1, session_closed());
    h.apply(0, sessions_reset());
    assert_eq!(h.engine.order_count(), 8);
}

/// A small xorshift64 generator: deterministic, no dependencies.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A random-ish command over a few accounts and both symbols, naming earlier ClOrdIDs in
/// cancels and replaces; mostly valid, sometimes not.
fn random_command(rng: &mut XorShift, n: usize, issued: &mut Vec<(String, String)>) -> (u64, Command) {
    let accounts = ["A", "B", "C", "D"];
    let session = 1 + rng.below(3);
    let cl_ord_id = format!("o{n}");
    let roll = rng.below(100);
    let command = if roll < 60 || issued.is_empty() {
        let account = rng.pick(&accounts);
        let (symbol, tick, reference) = if rng.below(4) == 0 { (BOLT, 1, 2_000) } else { (ACME, 5, 10_000) };
        let price = reference + tick * (rng.below(41) as i64 - 20) * if rng.below(50) == 0 { 100 } else { 1 };
        let kind = rng.below(10);
        let request = NewOrderRequest {
            account: account.into(),
            cl_ord_id: cl_ord_id.clone(),
            symbol: if rng.below(100) == 0 { "NOPE".into() } else { symbol.into() },
            side: if rng.below(100) == 0 { 7 } else { 1 + rng.below(2) as i32 },
            order_type: if kind == 0 {
                OrderType::Market as i32
            } else {
                OrderType::Limit as i32
            },
            time_in_force: if kind == 1 {
                TimeInForce::Ioc as i32
            } else {
                TimeInForce::Day as i32
            },
            price,
            quantity: rng.below(60) as i64 - 2,
            cancel_on_disconnect: rng.below(3) == 0,
            possible_resend: false,
        };
        issued.push((account.to_owned(), cl_ord_id));
        Command::NewOrder(request)
    } else if roll < 95 {
        let (account, orig) = issued[rng.below(issued.len() as u64) as usize].clone();
        issued.push((account.clone(), cl_ord_id.clone()));
        if roll < 78 {
            cancel(&account, &cl_ord_id, &orig)
        } else {
            let price = 10_000 + 5 * (rng.below(41) as i64 - 20);
            replace(&account, &cl_ord_id, &orig, price, rng.below(60) as i64)
        }
    } else if roll < 97 {
        session_closed()
    } else if roll < 98 {
        sessions_reset()
    } else {
        kill_switch(if rng.below(2) == 0 { "" } else { rng.pick(&accounts) }, rng.below(2) == 0)
    };
    (session, command)
}

/// Everything a run produced: each command's check result or apply outcome, then the final state.
#[derive(Debug, PartialEq)]
struct Run {
    results: Vec<Result<Outcome, Reject>>,
    journal: Vec<(u64, u64, Command)>,
    queries: Vec<Option<ExecutionReport>>,
    tops: Vec<Option<MarketDataUpdate>>,
    positions: Vec<i64>,
}

fn final_state(engine: &Engine, issued: &[(String, String)]) -> (Vec<Option<ExecutionReport>>, Vec<Option<MarketDataUpdate>>, Vec<i64>) {
    let queries = issued.iter().map(|(account, id)| engine.query(account, id)).collect();
    let tops = [ACME, BOLT].iter().map(|symbol| engine.top_of_book(symbol)).collect();
    let positions = ["A", "B", "C", "D"]
        .iter()
        .flat_map(|a| [ACME, BOLT].map(|s| engine.position(a, s)))
        .collect();
    (queries, tops, positions)
}

/// The live path over `count` generated commands, with a throttle tight enough to bite.
fn live_run(seed: u64, count: usize) -> (Run, Vec<(String, String)>) {
    let mut h = Harness::with_limits(Limits {
        orders_per_second: 50,
        burst: 5,
        max_open_orders: 20,
        position_limit: 300,
        ..limits()
    });
    let mut rng = XorShift(seed);
    let mut issued = Vec::new();
    let mut results = Vec::new();
    let mut journal = Vec::new();
    for n in 0..count {
        let (session, command) = random_command(&mut rng, n, &mut issued);
        h.advance(Duration::from_micros(rng.below(5_000)));
        let result = h.submit(session, command.clone());
        if result.is_ok() {
            journal.push((h.sequence, session, command));
        }
        results.push(result);
    }
    let (queries, tops, positions) = final_state(&h.engine, &issued);
    (
        Run {
            results,
            journal,
            queries,
            tops,
            positions,
        },
        issued,
    )
}

#[test]
fn the_same_commands_give_the_same_outcomes_on_two_engines() {
    let (first, _) = live_run(0x9E37_79B9_7F4A_7C15, 3_000);
    let (second, _) = live_run(0x9E37_79B9_7F4A_7C15, 3_000);
    assert_eq!(first, second);
    // The run exercised the interesting paths.
    let outcomes: Vec<&Outcome> = first.results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused: Vec<RejectReason> = first.results.iter().filter_map(|r| r.as_ref().err().map(|r| r.reason)).collect();
    assert!(outcomes.iter().any(|o| o.response.fills.len() > 1), "no sweep");
    assert!(outcomes.iter().any(|o| exec_type(&o.response) == ExecType::Replaced), "no replace");
    assert!(
        outcomes
            .iter()
            .any(|o| o.reports.iter().any(|r| r.text == "cancelled on disconnect")),
        "no cancel on disconnect"
    );
    for reason in [
        RejectReason::RateLimit,
        RejectReason::OrderFinal,
        RejectReason::InvalidQuantity,
        RejectReason::KillSwitch,
    ] {
        assert!(refused.contains(&reason), "no {reason:?}");
    }
}

#[test]
fn replaying_the_journal_rebuilds_the_same_state_and_reports() {
    let (live, issued) = live_run(0x0123_4567_89AB_CDEF, 3_000);
    let mut replay = Engine::new(
        symbols(),
        Limits {
            max_open_orders: 0,
            burst: 0,
            ..limits()
        },
    );
    let live_outcomes: Vec<&Outcome> = live.results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(live_outcomes.len(), live.journal.len());
    for ((sequence, session, command), live_outcome) in live.journal.iter().zip(live_outcomes) {
        let outcome = replay.apply(*sequence, *session, command);
        assert_eq!(&outcome, live_outcome, "sequence {sequence}");
    }
    assert_consistent(&replay);
    let (queries, tops, positions) = final_state(&replay, &issued);
    assert_eq!((queries, tops, positions), (live.queries, live.tops, live.positions));
}
