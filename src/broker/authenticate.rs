//! The SASL requests of a connection, as Apache Kafka answers them: SaslHandshake (v0–1) selects a mechanism
//! the listener offers (else UNSUPPORTED_SASL_MECHANISM with the list, and the connection closes),
//! SaslAuthenticate (v0–2, KIP-152) carries each token of the exchange (a failure is answered
//! SASL_AUTHENTICATION_FAILED and the connection closes), and after a v0 handshake the tokens come as bare
//! frames. On a listener without SASL, or once authenticated, both are ILLEGAL_SASL_STATE.

use super::auth::sasl::{SaslState, Step};
use super::auth::{ListenerSecurity, Mechanism};
use super::dispatch::Outcome;
use crate::wire::encode_response_kind;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// What follows from a header and body read off a SASL request frame.
fn decode<R: Decodable>(key: ApiKey, frame: Bytes, max_version: i16) -> Result<(RequestHeader, i16, R), Outcome> {
    if frame.len() < 8 {
        return Err(Outcome::Close(format!(
            "a {}-byte frame cannot hold a request header",
            frame.len()
        )));
    }
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    if !(0..=max_version).contains(&version) {
        return Err(Outcome::Close(format!("{key:?} v{version} is not supported")));
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, key.request_header_version(version))
        .map_err(|e| Outcome::Close(format!("{key:?} v{version} request header: {e}")))?;
    let request =
        R::decode(&mut body, version).map_err(|e| Outcome::Close(format!("{key:?} v{version} request body: {e:#}")))?;
    Ok((header, version, request))
}

fn respond(
    key: ApiKey,
    response: ResponseKind,
    header: &RequestHeader,
    version: i16,
    close: Option<String>,
) -> Outcome {
    match encode_response_kind(
        key as i16,
        &response,
        version,
        header.correlation_id,
        key.response_header_version(version),
    ) {
        Ok(frame) => match close {
            Some(why) => Outcome::RespondAndClose(frame, why),
            None => Outcome::Respond(frame),
        },
        Err(e) => Outcome::Close(e.to_string()),
    }
}

pub fn handshake(state: &mut SaslState, security: &ListenerSecurity, frame: Bytes) -> Outcome {
    let key = ApiKey::SaslHandshake;
    let (header, version, request) = match decode::<SaslHandshakeRequest>(key, frame, 1) {
        Ok(decoded) => decoded,
        Err(outcome) => return outcome,
    };
    let offered: Vec<StrBytes> = security
        .mechanisms
        .iter()
        .map(|m| StrBytes::from_static_str(m.name()))
        .collect();
    let answer = |code: i16| {
        SaslHandshakeResponse::default()
            .with_error_code(code)
            .with_mechanisms(offered.clone())
    };
    if !matches!(state, SaslState::Start) {
        let response = ResponseKind::SaslHandshake(answer(ResponseError::IllegalSaslState.code()));
        return respond(key, response, &header, version, None);
    }
    match Mechanism::parse(request.mechanism.as_str()).filter(|m| security.mechanisms.contains(m)) {
        Some(mechanism) => {
            *state = SaslState::Mechanism {
                mechanism,
                raw: version == 0,
            };
            respond(key, ResponseKind::SaslHandshake(answer(0)), &header, version, None)
        }
        None => {
            let why = format!("Unsupported SASL mechanism {}", request.mechanism.as_str());
            let response = ResponseKind::SaslHandshake(answer(ResponseError::UnsupportedSaslMechanism.code()));
            respond(key, response, &header, version, Some(why))
        }
    }
}

pub fn authenticate(state: &mut SaslState, security: &ListenerSecurity, frame: Bytes) -> Outcome {
    let key = ApiKey::SaslAuthenticate;
    let (header, version, request) = match decode::<SaslAuthenticateRequest>(key, frame, 2) {
        Ok(decoded) => decoded,
        Err(outcome) => return outcome,
    };
    let error = |code: ResponseError, message: &str| {
        ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message.to_owned()))),
        )
    };
    match state {
        SaslState::Authenticated(_) => {
            let message = "SaslAuthenticate request received after successful authentication";
            return respond(
                key,
                error(ResponseError::IllegalSaslState, message),
                &header,
                version,
                None,
            );
        }
        SaslState::Start => {
            let message = "Unexpected SaslAuthenticate request with no SaslHandshake before it";
            let response = error(ResponseError::IllegalSaslState, message);
            return respond(key, response, &header, version, Some(message.to_owned()));
        }
        _ => {}
    }
    let token = match state.step(&request.auth_bytes, &security.users) {
        Step::Continue(token) => token,
        Step::Done(token, principal) => {
            tracing::debug!(principal = principal.name, "authenticated");
            token
        }
        Step::Failed(message) => {
            let response = error(ResponseError::SaslAuthenticationFailed, &message);
            return respond(key, response, &header, version, Some(message));
        }
    };
    let response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(token));
    respond(key, ResponseKind::SaslAuthenticate(response), &header, version, None)
}

/// A bare token after a v0 handshake: answered with a bare token; a failure just closes (v0 has no error).
pub fn raw_token(state: &mut SaslState, security: &ListenerSecurity, frame: &[u8]) -> Outcome {
    match state.step(frame, &security.users) {
        Step::Continue(token) | Step::Done(token, _) => {
            let mut out = BytesMut::with_capacity(token.len() + 4);
            out.put_i32(token.len() as i32);
            out.put_slice(&token);
            Outcome::Respond(out.freeze())
        }
        Step::Failed(message) => Outcome::Close(message),
    }
}
