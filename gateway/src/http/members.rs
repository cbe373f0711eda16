//! Members and their cards.
//!
//! - `GET /api/v1/members?q=&offset=&limit=`: members by id, filtered by a search in id, name
//!   and e-mail (any staff member).
//! - `GET /api/v1/members/{id}`: one member with every card ever issued.
//! - `POST /api/v1/members`, `PATCH /api/v1/members/{id}` (admins): the fields of the members
//!   CSV (`id`, `name`, `email`, `plan`, `organisation`, `roles`, `certifications`,
//!   `valid_from`, `valid_until`, `cards`), plus `suspended` (a reason suspends, `""` lifts).
//!   Lists may be JSON arrays. The core checks them against the site and the stored members.
//! - `POST /api/v1/members/{id}/cards` with `{"card"}`, `DELETE /api/v1/cards/{card}` (admins).
//! - `POST /api/v1/members/{id}/erase` with `{"confirm": id}` (admins): the member's personal
//!   data erased as `kombinat member erase` does; the store's files are written anew at the
//!   gateway's next start.
//! - `POST /api/v1/members/{id}/pin` (admins): a new six-digit PIN, made here and shown once;
//!   `DELETE /api/v1/members/{id}/pin`: every PIN the member holds revoked.
//!
//! Every change is audited with the staff member who made it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Admin, Viewer};
use super::{ask_core, blocking, fields, ApiError, AppState};
use crate::bus::{Control, MemberRefusal};
use crate::domain::{CardId, Credential, Member, MemberId, MemberStatus};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/members", get(list).post(create))
        .route("/api/v1/members/{id}", get(one).patch(update))
        .route("/api/v1/members/{id}/cards", post(add_card))
        .route(
            "/api/v1/members/{id}/pin",
            post(issue_pin).delete(revoke_pins),
        )
        .route("/api/v1/members/{id}/erase", post(erase))
        .route("/api/v1/cards/{card}", delete(revoke_card))
}

/// A card as a member's record shows it.
#[derive(Serialize, ToSchema)]
pub struct CardView {
    /// The UID, upper-case hex.
    pub card: String,
    /// Issued, RFC 3339.
    pub issued_at: String,
    /// Revoked, RFC 3339, if it was.
    pub revoked_at: Option<String>,
}

/// A member.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    /// The e-mail, if known.
    pub email: Option<String>,
    /// `active` or `suspended`.
    pub status: String,
    /// Why suspended.
    pub suspended_reason: Option<String>,
    pub plan: Option<String>,
    pub organisation: Option<String>,
    /// `staff`, `security`.
    pub roles: Vec<String>,
    /// Certifications held.
    pub certifications: Vec<String>,
    /// Rights from, RFC 3339.
    pub valid_from: Option<String>,
    /// Rights until, RFC 3339.
    pub valid_until: Option<String>,
    /// Cards (in a list: only the ones in force).
    pub cards: Vec<CardView>,
    /// PINs in force (never their digits: a PIN is shown once, to the admin who issued it).
    pub pins: usize,
}

fn view(m: &Member, cards: Vec<CardView>) -> MemberView {
    MemberView {
        id: m.id.to_string(),
        name: m.name.clone(),
        email: m.email.as_ref().map(|e| e.to_string()),
        status: match m.status {
            MemberStatus::Active => "active".into(),
            MemberStatus::Suspended { .. } => "suspended".into(),
        },
        suspended_reason: match &m.status {
            MemberStatus::Suspended { reason } => Some(reason.clone()),
            MemberStatus::Active => None,
        },
        plan: m.plan.map(|p| p.to_string()),
        organisation: m.organisation.as_ref().map(|o| o.to_string()),
        roles: m.roles.iter().map(word).collect(),
        certifications: m.certifications.iter().map(|c| c.to_string()).collect(),
        valid_from: m.valid_from.map(|t| t.to_rfc3339()),
        valid_until: m.valid_until.map(|t| t.to_rfc3339()),
        cards,
        pins: 0,
    }
}

/// A member's PINs in force.
fn pins_of(m: MemberId, creds: &[crate::domain::CredentialRecord]) -> usize {
    creds
        .iter()
        .filter(|r| r.member == m && r.revoked_at.is_none())
        .filter(|r| matches!(r.credential, Credential::Pin(_)))
        .count()
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .unwrap_or_default()
}

/// The list's query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Text found in the id, name or e-mail (any case); for admins also a card's whole number.
    pub q: Option<String>,
    /// Members to skip.
    pub offset: Option<usize>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// A page of members.
#[derive(Serialize, ToSchema)]
pub struct MemberPage {
    /// Members matching, in all.
    pub total: usize,
    /// This page.
    pub members: Vec<MemberView>,
}

/// A card on a member's record: its whole number for admins, masked for everyone else.
fn card_view(r: &crate::domain::CredentialRecord, whole: bool) -> Option<CardView> {
    match r.credential {
        Credential::Card(c) => Some(CardView {
            card: if whole {
                c.to_string()
            } else {
                super::masked_card(&c.to_string())
            },
            issued_at: r.issued_at.to_rfc3339(),
            revoked_at: r.revoked_at.map(|t| t.to_rfc3339()),
        }),
        Credential::Pin(_) => None,
    }
}

/// Members, searched and paged.
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(ListQuery),
    responses((status = 200, body = MemberPage), (status = 401)))]
pub async fn list(
    State(s): State<AppState>,
    who: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let whole = who.0.role == crate::staff::StaffRole::Admin;
    let store = s.store.clone();
    let (members, creds) = blocking(move || {
        Ok::<_, crate::store::StoreError>((store.members()?, store.credentials()?))
    })
    .await?
    .map_err(|_| ApiError::Unavailable)?;
    let needle = q.q.unwrap_or_default().to_lowercase();
    // An admin also finds a member by a card's whole number, in any common spelling (below
    // admin, card numbers are not shown, nor looked up).
    let card = whole
        .then(|| CardId::parse(needle.trim()).ok())
        .flatten()
        .map(Credential::Card);
    let hits: Vec<&Member> = members
        .iter()
        .filter(|m| {
            needle.is_empty()
                || card.as_ref().is_some_and(|c| {
                    creds
                        .iter()
                        .any(|r| r.member == m.id && r.revoked_at.is_none() && r.credential == *c)
                })
                || m.id.to_string().to_lowercase().contains(&needle)
                || m.name.to_lowercase().contains(&needle)
                || m.email
                    .as_ref()
                    .is_some_and(|e| e.to_string().to_lowercase().contains(&needle))
        })
        .collect();
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = hits
        .iter()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .map(|m| {
            let cards = creds
                .iter()
                .filter(|r| r.member == m.id && r.revoked_at.is_none())
                .filter_map(|r| card_view(r, whole))
                .collect();
            MemberView {
                pins: pins_of(m.id, &creds),
                ..view(m, cards)
            }
        })
        .collect();
    Ok(Json(MemberPage {
        total: hits.len(),
        members: page,
    }))
}

async fn load(s: &AppState, id: &str, whole: bool) -> Result<MemberView, ApiError> {
    let not_found = || ApiError::NotFound(format!("no member {id:?}"));
    let mid = MemberId::parse(id).map_err(|_| not_found())?;
    let store = s.store.clone();
    let (m, creds) = blocking(move || {
        Ok::<_, crate::store::StoreError>((store.member(mid)?, store.credentials()?))
    })
    .await?
    .map_err(|_| ApiError::Unavailable)?;
    let m = m.ok_or_else(not_found)?;
    let cards = creds
        .iter()
        .filter(|r| r.member == mid)
        .filter_map(|r| card_view(r, whole))
        .collect();
    Ok(MemberView {
        pins: pins_of(mid, &creds),
        ..view(&m, cards)
    })
}

/// One member, with every card ever issued to them.
#[utoipa::path(get, path = "/api/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "the member")),
    responses((status = 200, body = MemberView), (status = 401), (status = 404)))]
pub async fn one(
    State(s): State<AppState>,
    who: Viewer,
    Path(id): Path<String>,
) -> Result<Json<MemberView>, ApiError> {
    load(&s, &id, who.0.role == crate::staff::StaffRole::Admin)
        .await
        .map(Json)
}

fn refusal(r: MemberRefusal, field: &str) -> ApiError {
    match r {
        MemberRefusal::Invalid(m) => ApiError::Invalid(vec![(field.into(), m)]),
        MemberRefusal::NotFound(m) => ApiError::NotFound(m),
        MemberRefusal::Conflict(m) => ApiError::Conflict(m),
        MemberRefusal::Failed => ApiError::Unavailable,
    }
}

async fn change(
    s: &AppState,
    who: &Admin,
    f: std::collections::BTreeMap<String, String>,
    create: bool,
) -> Result<(), ApiError> {
    let by = who.actor();
    ask_core(s, move |reply| Control::Member {
        fields: f,
        create,
        by,
        reply,
    })
    .await?
    .map_err(|r| refusal(r, ""))
}

/// Adds a member (admins).
#[utoipa::path(post, path = "/api/v1/members", tag = "members",
    request_body(content = Object, description = "the member's fields, as the members CSV has them"),
    responses((status = 201, body = MemberView), (status = 401), (status = 403),
              (status = 409, description = "the id, e-mail or a card is taken"), (status = 422)))]
pub async fn create(
    State(s): State<AppState>,
    who: Admin,
    Json(body): Json<serde_json::Value>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let f = fields(&body)?;
    let id = f.get("id").cloned().unwrap_or_default();
    change(&s, &who, f, true).await?;
    Ok((StatusCode::CREATED, Json(load(&s, &id, true).await?)))
}

/// Changes a member (admins): fields left out stay as they are.
#[utoipa::path(patch, path = "/api/v1/members/{id}", tag = "members",
    params(("id" = String, Path, description = "the member")),
    request_body(content = Object, description = "the fields to change"),
    responses((status = 200, body = MemberView), (status = 401), (status = 403), (status = 404),
              (status = 409), (status = 422)))]
pub async fn update(
    State(s): State<AppState>,
    who: Admin,
    Path(id): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Result<Json<MemberView>, ApiError> {
    let current = load(&s, &id, true).await?;
    let mut f = fields(&body)?;
    if f.get("id").is_some_and(|x| *x != id) {
        return Err(ApiError::Invalid(vec![(
            "id".into(),
            "a member's id cannot change".into(),
        )]));
    }
    f.insert("id".into(), id.clone());
    f.entry("name".into()).or_insert(current.name);
    change(&s, &who, f, false).await?;
    Ok(Json(load(&s, &id, true).await?))
}

/// A card to issue.
#[derive(Deserialize, ToSchema)]
pub struct NewCard {
    /// The UID, in any common spelling (`04:a1:b2:c3`, `04A1B2C3`).
    pub card: String,
}

/// Issues a card to a member (admins).
#[utoipa::path(post, path = "/api/v1/members/{id}/cards", tag = "members", request_body = NewCard,
    params(("id" = String, Path, description = "the member")),
    responses((status = 201, body = MemberView), (status = 401), (status = 403), (status = 404),
              (status = 409, description = "another member holds the card"), (status = 422)))]
pub async fn add_card(
    State(s): State<AppState>,
    who: Admin,
    Path(id): Path<String>,
    Json(body): Json<NewCard>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    let current = load(&s, &id, true).await?;
    let card = CardId::parse(&body.card)
        .map_err(|e| ApiError::Invalid(vec![("card".into(), e.to_string())]))?;
    let f = [
        ("id".to_string(), id.clone()),
        ("name".to_string(), current.name),
        ("cards".to_string(), card.to_string()),
    ]
    .into_iter()
    .collect();
    change(&s, &who, f, false).await?;
    Ok((StatusCode::CREATED, Json(load(&s, &id, true).await?)))
}

/// An erasure, confirmed by the member's id typed again.
#[derive(Deserialize, ToSchema)]
pub struct EraseRequest {
    pub confirm: String,
}

/// What an erasure did.
#[derive(Serialize, ToSchema)]
pub struct Erased {
    /// What the log calls them from now on.
    pub pseudonym: String,
    /// Log entries rewritten.
    pub entries: usize,
    /// The old versions sled keeps in the store's files go when the gateway next starts; copies
    /// outside it (backups, a store kept by a restore) still hold the member's details.
    pub files_rewritten_at_next_start: bool,
}

/// Erases a member's personal data (admins): their record and cards go, they leave their
/// bookings, every log entry naming them is rewritten with a pseudonym and without their cards.
/// Audited (under the pseudonym). The request must repeat the member's id in `confirm`.
#[utoipa::path(post, path = "/api/v1/members/{id}/erase", tag = "members", request_body = EraseRequest,
    params(("id" = String, Path, description = "the member")),
    responses((status = 200, body = Erased), (status = 401), (status = 403), (status = 404),
              (status = 422, description = "confirm is not the member's id")))]
pub async fn erase(
    State(s): State<AppState>,
    who: Admin,
    Path(id): Path<String>,
    Json(body): Json<EraseRequest>,
) -> Result<Json<Erased>, ApiError> {
    let mid = MemberId::parse(&id).map_err(|_| ApiError::NotFound(format!("no member {id:?}")))?;
    if body.confirm.trim() != id {
        return Err(ApiError::Invalid(vec![(
            "confirm".into(),
            "type the member's id to confirm the erasure".into(),
        )]));
    }
    let by = who.actor();
    let (pseudonym, entries) = ask_core(&s, move |reply| Control::Erase {
        member: mid,
        by,
        reply,
    })
    .await?
    .map_err(|r| refusal(r, "id"))?;
    tracing::info!(staff = %who.0.name, %pseudonym, entries, "member erased");
    Ok(Json(Erased {
        pseudonym,
        entries,
        files_rewritten_at_next_start: true,
    }))
}

/// A PIN just issued: shown this once.
#[derive(Serialize, ToSchema)]
pub struct IssuedPin {
    /// Six digits, for the member to type at a door's keypad.
    pub pin: String,
    pub member: MemberView,
}

/// Six random digits, uniform.
fn random_pin() -> Result<String, ApiError> {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).map_err(|_| ApiError::Unavailable)?;
        let n = u32::from_le_bytes(b);
        // The largest multiple of a million below 2^32: no digit string is likelier.
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// Issues a member a new PIN (admins): six random digits no one else holds, made here and
/// shown once in the answer (an admin never types one: a PIN they chose that another member
/// held would tell them whose it is). Audited with the PIN masked.
#[utoipa::path(post, path = "/api/v1/members/{id}/pin", tag = "members",
    params(("id" = String, Path, description = "the member")),
    responses((status = 201, body = IssuedPin), (status = 401), (status = 403), (status = 404)))]
pub async fn issue_pin(
    State(s): State<AppState>,
    who: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<IssuedPin>), ApiError> {
    load(&s, &id, true).await?;
    let mid = MemberId::parse(&id).map_err(|_| ApiError::NotFound(format!("no member {id:?}")))?;
    // A PIN ever issued, revoked ones too, is never issued again: its former holder may still
    // know it. (A PIN someone holds is also refused by the core as taken.)
    let store = s.store.clone();
    let used: std::collections::HashSet<crate::domain::Credential> = blocking(move || {
        store
            .credentials()
            .map(|c| c.into_iter().map(|r| r.credential).collect())
    })
    .await?
    .map_err(|_| ApiError::Unavailable)?;
    for _ in 0..64 {
        let text = random_pin()?;
        let pin = crate::domain::Pin::parse(&text).map_err(|_| ApiError::Unavailable)?;
        if used.contains(&Credential::Pin(pin)) {
            continue;
        }
        let by = who.actor();
        let r = ask_core(&s, move |reply| Control::Pin {
            member: mid,
            issue: Some(pin),
            by,
            reply,
        })
        .await?;
        match r {
            Ok(()) => {
                tracing::info!(staff = %who.0.name, member = %mid, "PIN issued");
                return Ok((
                    StatusCode::CREATED,
                    Json(IssuedPin {
                        pin: text,
                        member: load(&s, &id, true).await?,
                    }),
                ));
            }
            Err(MemberRefusal::Conflict(_)) => continue,
            Err(r) => return Err(refusal(r, "pin")),
        }
    }
    Err(ApiError::Unavailable)
}

/// Revokes every PIN a member holds (admins).
#[utoipa::path(delete, path = "/api/v1/members/{id}/pin", tag = "members",
    params(("id" = String, Path, description = "the member")),
    responses((status = 204), (status = 401), (status = 403),
              (status = 404, description = "no such member, or they hold no PIN")))]
pub async fn revoke_pins(
    State(s): State<AppState>,
    who: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mid = MemberId::parse(&id).map_err(|_| ApiError::NotFound(format!("no member {id:?}")))?;
    let by = who.actor();
    ask_core(&s, move |reply| Control::Pin {
        member: mid,
        issue: None,
        by,
        reply,
    })
    .await?
    .map_err(|r| refusal(r, "pin"))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes a card (admins): it stays known, and taps with it are logged as revoked.
#[utoipa::path(delete, path = "/api/v1/cards/{card}", tag = "members",
    params(("card" = String, Path, description = "the card's UID")),
    responses((status = 204), (status = 401), (status = 403), (status = 404),
              (status = 409, description = "already revoked")))]
pub async fn revoke_card(
    State(s): State<AppState>,
    who: Admin,
    Path(card): Path<String>,
) -> Result<StatusCode, ApiError> {
    let card = CardId::parse(&card).map_err(|_| ApiError::NotFound(format!("no card {card:?}")))?;
    let by = who.actor();
    ask_core(&s, move |reply| Control::RevokeCard { card, by, reply })
        .await?
        .map_err(|r| refusal(r, "card"))?;
    Ok(StatusCode::NO_CONTENT)
}
