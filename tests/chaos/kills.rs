//! Random kills: 200 resources of the four kinds are created, rotated and deleted on a
//! seeded random schedule while the operator is SIGKILLed 20 times at random moments and
//! restarted each time. Afterwards every survivor is Ready with a working key, the upstream
//! holds exactly what the survivors account for, and deleted resources left nothing behind.

use std::time::{Duration, Instant};

use apikey_operator_test_support::fixtures;

use crate::fleet::{Fleet, Kind};
use crate::rng::{Rng, SEED_ENV};
use crate::world::{Operator, World};
use crate::{inventory, report};

const RESOURCES: usize = 200;
const KILLS: u32 = 20;
/// The workload's operations are spread over this long.
const WORKLOAD: Duration = Duration::from_secs(30);

/// One operation of the schedule, at `at` after the start.
#[derive(Clone, Copy, Debug)]
enum Op {
    Create(usize),
    Rotate { index: usize, gitops: bool },
    Delete(usize),
}

/// Every member is created at a random moment; about half are then rotated once or twice
/// and a fifth deleted (some of them rotated first, some never reconciled before).
fn schedule(rng: &mut Rng) -> Vec<(Duration, Op)> {
    let mut ops = Vec::new();
    for index in 0..RESOURCES {
        let created = rng.between(Duration::ZERO, WORKLOAD.mul_f64(0.6));
        ops.push((created, Op::Create(index)));
        let mut last = created;
        for _ in 0..[0, 0, 1, 2][(rng.next_u64() % 4) as usize] {
            last = rng.between(last, WORKLOAD.mul_f64(0.9));
            ops.push((
                last,
                Op::Rotate {
                    index,
                    gitops: rng.chance(0.5),
                },
            ));
        }
        if rng.chance(0.2) {
            ops.push((rng.between(last, WORKLOAD), Op::Delete(index)));
        }
    }
    ops.sort_by_key(|(at, _)| *at);
    ops
}

#[tokio::test]
async fn random_kills_lose_nothing_and_leave_nothing_behind() {
    let started = Instant::now();
    let seed = Rng::seed_from_env();
    println!("random kills: seed {seed} (rerun with {SEED_ENV}={seed})");
    let mut rng = Rng::new(seed);
    let world = World::new("chaos-kills").await;
    let mut operator = Operator::start(&world);
    world.stores_ready().await;
    let mut fleet = Fleet::new(&world, "k", RESOURCES);
    let ops = schedule(&mut rng);

    let mut killer_rng = rng.fork();
    let killer = tokio::task::spawn_blocking(move || {
        for _ in 0..KILLS {
            std::thread::sleep(killer_rng.between(Duration::from_millis(500), Duration::from_millis(3000)));
            operator.kill_and_restart();
        }
        operator
    });
    let workload_started = tokio::time::Instant::now();
    for (at, op) in ops {
        tokio::time::sleep_until(workload_started + at).await;
        match op {
            Op::Create(index) => fleet.create(&world, index).await,
            Op::Rotate { index, gitops } => fleet.rotate(index, gitops).await,
            Op::Delete(index) => fleet.delete(index).await,
        }
    }
    let operator = killer.await.unwrap();
    let kills_done = started.elapsed();

    let seen = fleet.wait_converged(Duration::from_secs(240)).await;
    let converged = started.elapsed();
    inventory::assert_secrets_work(&world, &fleet).await;
    let accounted = inventory::accounted(&fleet, &seen);
    inventory::assert_matches(&inventory::upstream(&world).await, &accounted);
    // Retain periods the upstream keeps by itself (ZenML's rotated-out secrets) elapse.
    fixtures::advance_clock(&world.credstore, 2 * 3600).await;
    inventory::assert_matches(&inventory::upstream(&world).await, &accounted);
    inventory::assert_one_live_credential_each(&fleet, &accounted);

    println!(
        "random kills: seed {seed}, {} kills survived ({} operator processes), workload and kills {:.0?}, converged at {:.0?}, total {:.0?}",
        operator.killed,
        operator.started,
        kills_done,
        converged,
        started.elapsed()
    );
    report::tally(&fleet);
    assert_eq!(
        operator.killed, KILLS,
        "every kill landed on a running operator and killed it"
    );
}

/// A kill between deleting an Akamai client upstream and removing the finalizer leaves a
/// resource whose client is already gone; deleting it must still complete (it failed on
/// the 404 of listing the gone client's credentials, forever).
#[tokio::test]
async fn deleting_a_client_already_gone_upstream_completes() {
    let world = World::new("chaos-gone").await;
    let _operator = Operator::start(&world);
    world.stores_ready().await;
    let mut fleet = Fleet::new(&world, "gone", Kind::ALL.len());
    let index = Kind::ALL.iter().position(|k| *k == Kind::ApiClient).unwrap();
    fleet.create(&world, index).await;
    let seen = fleet.wait_converged(fixtures::CONVERGE).await;
    let id = seen[&fleet.members[index].name].data["status"]["upstreamId"]
        .as_str()
        .unwrap()
        .to_string();

    let admin = fixtures::akamai_admin(&world.credstore);
    let (status, _) =
        fixtures::akamai_post(&admin, &format!("/api-clients/{id}/credentials/deactivate")).await;
    assert!(
        (200..300).contains(&status),
        "deactivating the credentials: {status}"
    );
    let (status, _) = fixtures::akamai_send(&admin, "DELETE", &format!("/api-clients/{id}")).await;
    assert_eq!(status, 204, "deleting the client");
    fleet.delete(index).await;
    fleet.wait_converged(fixtures::CONVERGE).await;
    inventory::assert_matches(&inventory::upstream(&world).await, &Default::default());
}
