//! Users, their devices and their preferences.

use chrono::{DateTime, Utc};
use herald_domain::{
    Device, EmailAddress, Locale, PhoneNumber, Preferences, PushPlatform, TimeZoneName, UserId,
};
use sqlx::Row;

use crate::{from_millis, millis, placeholders, Store, StoreError};

/// What `PUT /v1/users/{id}` sets. Absent fields are cleared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserProfile {
    pub email: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub time_zone: Option<TimeZoneName>,
    pub locale: Option<Locale>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub profile: UserProfile,
    pub preferences: Preferences,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn parse_opt<T>(
    value: Option<String>,
    what: &'static str,
    parse: impl Fn(&str) -> Result<T, herald_domain::DomainError>,
) -> Result<Option<T>, StoreError> {
    value
        .map(|v| parse(&v).map_err(|e| StoreError::corrupt(what, e)))
        .transpose()
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<UserRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let preferences: String = row.try_get("preferences")?;
    Ok(UserRecord {
        id: UserId::parse(id).map_err(|e| StoreError::corrupt("user", e))?,
        profile: UserProfile {
            email: parse_opt(row.try_get("email")?, "user email", EmailAddress::parse)?,
            phone: parse_opt(row.try_get("phone")?, "user phone", PhoneNumber::parse)?,
            time_zone: parse_opt(
                row.try_get("time_zone")?,
                "user time zone",
                TimeZoneName::parse,
            )?,
            locale: parse_opt(row.try_get("locale")?, "user locale", Locale::parse)?,
            name: row.try_get("name")?,
        },
        preferences: serde_json::from_str(&preferences)
            .map_err(|e| StoreError::corrupt("user preferences", e))?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

const USER_COLUMNS: &str =
    "id, email, phone, time_zone, locale, name, preferences, created_at, updated_at";

impl Store {
    /// Creates or replaces a user's profile, keeping their preferences and
    /// devices. Returns the record and whether it was new.
    #[tracing::instrument(skip(self, profile))]
    pub async fn put_user(
        &self,
        id: &UserId,
        profile: &UserProfile,
        now: DateTime<Utc>,
    ) -> Result<(UserRecord, bool), StoreError> {
        let sql = format!(
            "INSERT INTO users (id, email, phone, time_zone, locale, name, preferences, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, '{{}}', $7, $7) \
             ON CONFLICT (id) DO UPDATE SET email = excluded.email, phone = excluded.phone, \
               time_zone = excluded.time_zone, locale = excluded.locale, name = excluded.name, \
               updated_at = excluded.updated_at \
             RETURNING {USER_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .bind(profile.email.as_ref().map(|v| v.as_str().to_owned()))
            .bind(profile.phone.as_ref().map(|v| v.as_str().to_owned()))
            .bind(profile.time_zone.as_ref().map(|v| v.as_str().to_owned()))
            .bind(profile.locale.as_ref().map(|v| v.as_str().to_owned()))
            .bind(profile.name.clone())
            .bind(millis(now))
            .fetch_one(&mut *self.db.writer().await?)
            .await?;
        let user = user_from_row(&row)?;
        let created = user.created_at == user.updated_at;
        Ok((user, created))
    }

    pub async fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(self.db.read())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// The ids among `ids` that name no user.
    pub async fn unknown_users(&self, ids: &[UserId]) -> Result<Vec<UserId>, StoreError> {
        let mut unknown = Vec::new();
        // Chunks keep the statement under every driver's parameter limit.
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id FROM users WHERE id IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            let found: Vec<String> = query
                .fetch_all(self.db.read())
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<_, _>>()?;
            unknown.extend(
                chunk
                    .iter()
                    .filter(|id| !found.iter().any(|f| f == id.as_str()))
                    .cloned(),
            );
        }
        Ok(unknown)
    }

    /// Replaces a user's preferences. `false` if there is no such user.
    pub async fn put_preferences(
        &self,
        id: &UserId,
        preferences: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(preferences)
            .map_err(|e| StoreError::corrupt("preferences", e))?;
        let done = sqlx::query("UPDATE users SET preferences = $1, updated_at = $2 WHERE id = $3")
            .bind(json)
            .bind(millis(now))
            .bind(id.as_str())
            .execute(&mut *self.db.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Registers a push device for a user; a token already registered to
    /// someone else moves to this user. `false` if there is no such user.
    #[tracing::instrument(skip(self, device), fields(platform = %device.platform()))]
    pub async fn add_device(
        &self,
        user: &UserId,
        device: &Device,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO devices (platform, token, user_id, created_at) \
             SELECT $1, $2, id, $4 FROM users WHERE id = $3 \
             ON CONFLICT (platform, token) DO UPDATE SET user_id = excluded.user_id",
        )
        .bind(device.platform().as_str())
        .bind(device.token())
        .bind(user.as_str())
        .bind(millis(now))
        .execute(&mut *self.db.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn devices(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let rows = sqlx::query(
            "SELECT platform, token FROM devices WHERE user_id = $1 ORDER BY created_at, token",
        )
        .bind(user.as_str())
        .fetch_all(self.db.read())
        .await?;
        rows.iter()
            .map(|row| {
                let platform: String = row.try_get("platform")?;
                let token: String = row.try_get("token")?;
                PushPlatform::parse(&platform)
                    .and_then(|p| Device::new(p, &token))
                    .map_err(|e| StoreError::corrupt("device", e))
            })
            .collect()
    }
}

impl Store {
    /// Users and how many push devices each has, for a batch of ids in two
    /// queries; ids that name no user are absent from the answer.
    pub async fn recipients(
        &self,
        ids: &[UserId],
    ) -> Result<std::collections::HashMap<UserId, (UserRecord, usize)>, StoreError> {
        let mut found = std::collections::HashMap::with_capacity(ids.len());
        let columns = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {columns}, \
                   (SELECT COUNT(*) FROM devices d WHERE d.user_id = u.id) AS push_devices \
                 FROM users u WHERE u.id IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(self.db.read()).await? {
                let user = user_from_row(&row)?;
                let devices: i64 = row.try_get("push_devices")?;
                found.insert(
                    user.id.clone(),
                    (user, usize::try_from(devices).unwrap_or(0)),
                );
            }
        }
        Ok(found)
    }
}
