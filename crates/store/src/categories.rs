//! Categories: the operator's policy per category, as JSON.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use herald_domain::{Category, CategoryPolicy};
use sqlx::Row;

use crate::{from_millis, millis, placeholders, Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct CategoryRecord {
    pub name: Category,
    pub policy: CategoryPolicy,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn category_from_row(row: &sqlx::any::AnyRow) -> Result<CategoryRecord, StoreError> {
    let name: String = row.try_get("name")?;
    let policy: String = row.try_get("policy")?;
    Ok(CategoryRecord {
        name: Category::parse(name).map_err(|e| StoreError::corrupt("category", e))?,
        policy: serde_json::from_str(&policy).map_err(|e| StoreError::corrupt("category", e))?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

impl Store {
    /// Creates or replaces a category's policy. Returns the record and
    /// whether it was new.
    #[tracing::instrument(skip(self, policy))]
    pub async fn put_category(
        &self,
        name: &Category,
        policy: &CategoryPolicy,
        now: DateTime<Utc>,
    ) -> Result<(CategoryRecord, bool), StoreError> {
        let json = serde_json::to_string(policy).map_err(|e| StoreError::corrupt("category", e))?;
        let row = sqlx::query(
            "INSERT INTO categories (name, policy, created_at, updated_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (name) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at \
             RETURNING name, policy, created_at, updated_at",
        )
        .bind(name.as_str())
        .bind(json)
        .bind(millis(now))
        .fetch_one(&mut *self.db.writer().await?)
        .await?;
        let record = category_from_row(&row)?;
        let created = record.created_at == record.updated_at;
        Ok((record, created))
    }

    pub async fn get_category(
        &self,
        name: &Category,
    ) -> Result<Option<CategoryRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, policy, created_at, updated_at FROM categories WHERE name = $1",
        )
        .bind(name.as_str())
        .fetch_optional(self.db.read())
        .await?;
        row.as_ref().map(category_from_row).transpose()
    }

    /// Every category, by name.
    pub async fn list_categories(&self) -> Result<Vec<CategoryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, policy, created_at, updated_at FROM categories ORDER BY name",
        )
        .fetch_all(self.db.read())
        .await?;
        rows.iter().map(category_from_row).collect()
    }

    /// The policy of each named category; a category nobody defined gets
    /// the default policy.
    pub async fn policies(
        &self,
        names: &[Category],
    ) -> Result<HashMap<Category, CategoryPolicy>, StoreError> {
        let mut policies: HashMap<Category, CategoryPolicy> = names
            .iter()
            .map(|n| (n.clone(), CategoryPolicy::default()))
            .collect();
        let unique: Vec<Category> = policies.keys().cloned().collect();
        for chunk in unique.chunks(500) {
            let sql = format!(
                "SELECT name, policy, created_at, updated_at FROM categories WHERE name IN ({})",
                placeholders(chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for name in chunk {
                query = query.bind(name.as_str());
            }
            let rows = query.fetch_all(self.db.read()).await?;
            let found: Vec<CategoryRecord> = rows
                .iter()
                .map(category_from_row)
                .collect::<Result<_, _>>()?;
            policies.extend(found.into_iter().map(|r| (r.name, r.policy)));
        }
        Ok(policies)
    }
}
