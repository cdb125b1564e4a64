use super::*;

fn world(devices: usize) -> World {
    let config = SimConfig {
        devices,
        adopt_seed_devices: false,
        ..SimConfig::default()
    };
    World::new(config, 1_700_000_000)
}

#[test]
fn serials_are_canonical() {
    let s = Serial::parse(" c02xk1jhjg5j ").unwrap();
    assert_eq!(s.as_str(), "C02XK1JHJG5J");
    assert!(Serial::parse("TOO-LONG-SERIAL").is_none());
    assert!(Serial::parse("").is_none());
}

#[test]
fn the_same_seed_gives_the_same_devices() {
    let a = world(50);
    let b = world(50);
    let serials = |w: &World| {
        w.devices
            .iter()
            .map(|d| d.serial.as_str().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(serials(&a), serials(&b));
    assert!(
        a.devices
            .windows(2)
            .all(|p| p[0].purchased <= p[1].purchased)
    );
    assert!(a.devices.iter().all(|d| d.purchased <= 1_700_000_000));
}

#[test]
fn record_keeps_the_live_set_in_step() {
    let mut w = world(3);
    w.servers.push(test_server("A"));
    w.servers.push(test_server("B"));
    w.assign_device(0, 0, ADMIN, 10);
    w.assign_device(1, 0, ADMIN, 11);
    assert_eq!(w.servers[0].live.len(), 2);
    // Move device 0 to B: deleted on A, modified (profile removed) on B.
    w.assign_device(0, 1, ADMIN, 12);
    assert_eq!(w.servers[0].live.len(), 1);
    assert_eq!(w.servers[1].live.len(), 1);
    let ops: Vec<OpType> = w.servers[0].events.iter().map(|e| e.op).collect();
    assert_eq!(ops, vec![OpType::Added, OpType::Added, OpType::Deleted]);
    assert_eq!(w.servers[1].events[0].op, OpType::Modified);
    assert_eq!(w.servers[1].events[0].state.status, ProfileStatus::Removed);
    // Reassign to the same server: modified, removed.
    w.assign_device(1, 0, ADMIN, 13);
    assert_eq!(w.servers[0].events.last().unwrap().op, OpType::Modified);
    assert_eq!(w.servers[0].live.len(), 1);
    let report = w.unassign_serials(
        &[w.devices[1].serial.as_str().to_string(), "NOPE1234".into()],
        14,
    );
    assert_eq!(report.unassigned.len(), 1);
    assert_eq!(report.unknown, vec!["NOPE1234"]);
    assert!(w.servers[0].live.is_empty());
}

fn test_server(name: &str) -> Server {
    Server {
        uuid: name.to_string(),
        name: name.to_string(),
        certificate_pem: String::new(),
        consumer_key: format!("CK_{name}"),
        token: None,
        generation: 0,
        allow_release: false,
        created: 0,
        events: Vec::new(),
        live: BTreeMap::new(),
    }
}
