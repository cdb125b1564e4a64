use super::*;

/// RFC 5849 §1.2's example request.
const RFC_HEADER: &str = r#"OAuth realm="Photos",
    oauth_consumer_key="dpf43f3p2l4k3l03",
    oauth_token="nnch734d00sl2jdk",
    oauth_signature_method="HMAC-SHA1",
    oauth_timestamp="137131202",
    oauth_nonce="chapoH",
    oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D""#;

#[test]
fn the_rfc_5849_example_verifies() {
    let req = parse_request(Some(RFC_HEADER), Some("file=vacation.jpg&size=original")).unwrap();
    assert_eq!(req.consumer_key, "dpf43f3p2l4k3l03");
    assert_eq!(req.timestamp, 137_131_202);
    let uri = base_uri("http", "photos.example.net", "/photos");
    let base = base_string("GET", &uri, &req.signed_params);
    assert_eq!(
        base,
        "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26\
         oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26\
         oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26\
         oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
    );
    let expected = sign("kd94hf93k423kf44", "pfkkdhi9sl3r4s00", &base);
    assert_eq!(expected, "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
    assert!(signature_matches(&expected, &req.signature));
    assert!(!signature_matches(
        &expected,
        "MdpQcU8iPSUjWoN/UDMsK2sui9J="
    ));
}

#[test]
fn base_uri_drops_default_ports_and_lowercases() {
    assert_eq!(
        base_uri("HTTP", "Example.COM:80", "/session"),
        "http://example.com/session"
    );
    assert_eq!(
        base_uri("https", "a.b:443", "/session"),
        "https://a.b/session"
    );
    assert_eq!(
        base_uri("http", "127.0.0.1:8090", "/session"),
        "http://127.0.0.1:8090/session"
    );
    assert_eq!(
        base_uri("http", "[::1]:8090", "/session"),
        "http://[::1]:8090/session"
    );
}

#[test]
fn percent_encoding_follows_rfc_5849() {
    assert_eq!(percent_encode("a b+c/~_.-é"), "a%20b%2Bc%2F~_.-%C3%A9");
    assert_eq!(percent_decode("a%20b%2Bc").as_deref(), Some("a b+c"));
    assert_eq!(percent_decode("bad%2"), None);
    assert_eq!(percent_decode("bad%zz"), None);
}

fn header_without(name: &str) -> String {
    RFC_HEADER
        .lines()
        .filter(|l| !l.contains(&format!("{name}=")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn missing_parameters_are_400_parameter_absent() {
    for name in [
        "oauth_consumer_key",
        "oauth_token",
        "oauth_signature_method",
        "oauth_timestamp",
        "oauth_nonce",
        "oauth_signature",
    ] {
        let err = parse_request(Some(&header_without(name)), None).unwrap_err();
        assert_eq!(err, OAuthProblem::ParameterAbsent(name.to_string()));
        assert_eq!(err.status(), 400);
        assert!(err.body().contains("parameter_absent"));
    }
    assert_eq!(parse_request(None, None).unwrap_err().status(), 400);
    assert_eq!(
        parse_request(Some("Bearer abc"), None)
            .unwrap_err()
            .status(),
        400
    );
}

#[test]
fn duplicates_methods_and_versions_are_rejected() {
    let dup = format!("{RFC_HEADER}, oauth_nonce=\"again\"");
    assert_eq!(
        parse_request(Some(&dup), None).unwrap_err(),
        OAuthProblem::ParameterRejected("oauth_nonce".into())
    );
    let plaintext = RFC_HEADER.replace("HMAC-SHA1", "PLAINTEXT");
    assert_eq!(
        parse_request(Some(&plaintext), None).unwrap_err(),
        OAuthProblem::SignatureMethodRejected
    );
    let v2 = format!("{RFC_HEADER}, oauth_version=\"2.0\"");
    assert_eq!(
        parse_request(Some(&v2), None).unwrap_err(),
        OAuthProblem::VersionRejected
    );
    let v1 = format!("{RFC_HEADER}, oauth_version=\"1.0\"");
    let req = parse_request(Some(&v1), None).unwrap();
    assert!(
        req.signed_params
            .iter()
            .any(|(n, v)| n == "oauth_version" && v == "1.0")
    );
    assert!(
        !req.signed_params
            .iter()
            .any(|(n, _)| n == "realm" || n == "oauth_signature")
    );
}

#[test]
fn credential_problems_are_401_with_apples_bodies() {
    assert_eq!(OAuthProblem::SignatureInvalid.status(), 401);
    assert_eq!(OAuthProblem::SignatureInvalid.body(), "signature_invalid");
    assert_eq!(OAuthProblem::TokenRejected.body(), "token_rejected");
    assert_eq!(OAuthProblem::NonceUsed.status(), 401);
}
