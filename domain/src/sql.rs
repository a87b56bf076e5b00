//! How the domain's vocabulary is stored (feature `sqlx`, for the crates that talk to the
//! database): each enum as its one text form (`as_str`, parsed back with `FromStr`), in `text`
//! and `text[]` columns. No I/O here, only the mapping, so that no column holds a second
//! spelling of a status or role. [`stored_as_text!`](crate::stored_as_text) serves the other
//! crates' enums too (the projection engine's checkpoint states).

/// Implements sqlx's `Type`, `Encode`, `Decode` and `PgHasArrayType` for enums that have
/// `as_str(self) -> &'static str` and `FromStr` (whose error is a `std::error::Error`): they
/// are stored as that text.
#[macro_export]
macro_rules! stored_as_text {
    ($($t:ty),* $(,)?) => {$(
        impl ::sqlx::Type<::sqlx::Postgres> for $t {
            fn type_info() -> ::sqlx::postgres::PgTypeInfo {
                <&str as ::sqlx::Type<::sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as ::sqlx::Type<::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl ::sqlx::postgres::PgHasArrayType for $t {
            fn array_type_info() -> ::sqlx::postgres::PgTypeInfo {
                <&str as ::sqlx::postgres::PgHasArrayType>::array_type_info()
            }
            fn array_compatible(ty: &::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as ::sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }

        impl ::sqlx::Encode<'_, ::sqlx::Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut ::sqlx::postgres::PgArgumentBuffer,
            ) -> ::std::result::Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                <&str as ::sqlx::Encode<::sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> ::sqlx::Decode<'r, ::sqlx::Postgres> for $t {
            fn decode(
                value: ::sqlx::postgres::PgValueRef<'r>,
            ) -> ::std::result::Result<Self, ::sqlx::error::BoxDynError> {
                Ok(<&str as ::sqlx::Decode<::sqlx::Postgres>>::decode(value)?.parse::<$t>()?)
            }
        }
    )*};
}

stored_as_text!(
    crate::requisition::Status,
    crate::role::Role,
    crate::fund::PaymentMethod,
    crate::fund::MovementKind,
    crate::mail::MailCategory,
    crate::organisation::UnitKind,
    crate::organisation::Origin,
    crate::invitation::InvitationStatus,
    crate::delegation::DelegationStatus,
    crate::alert::AlertType,
    crate::alert::ObjectType,
    crate::alert::Severity,
    crate::alert::AlertState,
    crate::alert::AlertAction
);
