//! The production broker over TLS, as `deploy/README.md` sets it up: a CA and the broker's
//! certificate made with openssl, the mosquitto configuration `kombinat devices mosquitto-config
//! --cafile … --certfile … --keyfile …` generates, the gateway (`kombinat run`) through
//! `mqtts://` with the CA, and a door node's link with the CA in its `LinkConfig`. The node is
//! heard online through the gateway; a plain client and a node trusting another CA are refused.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kombinat::mosquitto::broker_password;
use kombinat_firmware::mqtt::{LinkConfig, MqttLink};
use kombinat_firmware::net::Network;
use kombinat_protocol::DeviceId;
use support::*;

/// A CA (`<name>-ca.pem`) and, signed by it, a certificate for 127.0.0.1 with its key. `None` on
/// a developer machine without openssl (said); in CI a missing openssl fails.
fn certificates(dir: &Path, name: &str) -> Option<()> {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output();
        match out {
            Ok(o) if o.status.success() => Some(()),
            Ok(o) => panic!("openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED: this test needs openssl ({e})");
                None
            }
            Err(e) => panic!("openssl is needed in CI: {e}"),
        }
    };
    let ca = format!("{name}-ca");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &format!("{ca}.key"),
        "-out",
        &format!("{ca}.pem"),
        "-days",
        "2",
        "-subj",
        "/CN=Kombinat test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.csr"),
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &format!("{name}.csr"),
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-out",
        &format!("{name}.pem"),
        "-days",
        "2",
        "-extfile",
        &format!("{name}.ext"),
    ])
}

fn node_link(port: u16, ca: &Path) -> MqttLink {
    let cfg = LinkConfig {
        username: Some("door-cowork".into()),
        password: Some(broker_password(&key(1))),
        ca_file: Some(ca.to_path_buf()),
        ..LinkConfig::new("127.0.0.1", port)
    };
    let device = DeviceId::parse("door-cowork").unwrap();
    let (link, _rx) = MqttLink::start(&cfg, device, vec![], |_, _, _| Ok(()));
    link
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_and_a_door_node_talk_through_the_tls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    prepare(&data);
    if certificates(d, "broker").is_none() || certificates(d, "other").is_none() {
        return;
    }
    let path = |f: &str| d.join(f).to_str().unwrap().to_string();
    let Some((_broker, port, said, _acl)) = acl_mosquitto_with(
        d,
        &data,
        &[
            "--cafile",
            &path("broker-ca.pem"),
            "--certfile",
            &path("broker.pem"),
            "--keyfile",
            &path("broker.key"),
        ],
    ) else {
        return;
    };
    let conf = std::fs::read_to_string(d.join("mq/kombinat.conf")).unwrap();
    assert!(conf.contains("certfile"), "a TLS listener: {conf}\n{said}");

    // The gateway through mqtts:// with its account and the CA.
    let http = free_port();
    let config = d.join("kombinat.toml");
    std::fs::write(
        &config,
        format!(
            "site = {:?}\ndata = {:?}\n[mqtt]\nbroker = \"mqtts://127.0.0.1:{port}\"\nusername = \"kombinat-gateway\"\npassword = \"{GATEWAY_BROKER_PASSWORD}\"\nca_file = {:?}\n[http]\nlisten = \"127.0.0.1:{http}\"\n",
            site_path(),
            data,
            d.join("broker-ca.pem")
        ),
    )
    .unwrap();
    let _gw = GatewayProcess::start_config(config);
    let base = format!("http://127.0.0.1:{http}");
    let started = Instant::now();
    while !healthy(&base) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway connected over TLS within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A door node trusting the broker's CA connects, and the gateway hears it online.
    let node = node_link(port, &d.join("broker-ca.pem"));
    let started = Instant::now();
    let online = loop {
        let (_, health) = get_signed(&format!("{base}/health"), "");
        let online = health["devices"]["online"].as_u64().unwrap_or(0);
        if (node.connected() && online >= 1) || started.elapsed() > Duration::from_secs(20) {
            break online;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(node.connected(), "the node connected over TLS");
    assert_eq!(
        online, 1,
        "the gateway heard the node online through the broker"
    );

    // One trusting another CA never connects (and never falls back to plain MQTT); nor does a
    // plain client on the TLS port.
    let stranger = node_link(port, &d.join("other-ca.pem"));
    let (_plain, mut plain_rx) = broker_client(
        "door-cowork",
        Some(("door-cowork", &broker_password(&key(1)))),
        port,
    );
    assert!(
        broker_connected(&mut plain_rx).await.is_err(),
        "plain MQTT refused on the TLS listener"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!stranger.connected(), "a node trusting another CA refused");
    assert!(node.connected(), "the first node still connected");
}
