//! How the domain's vocabulary is stored (feature `sqlx`, for the crates that talk to the
//! database): each enum as its one text form (`as_str`, parsed back with `FromStr`), in `text`
//! and `text[]` columns. No I/O here, only the mapping, so that no column holds a second
//! spelling of a status or role.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef, Postgres};
use sqlx::{Decode, Encode, Type};

macro_rules! stored_as_text {
    ($($t:ty),*) => {$(
        impl Type<Postgres> for $t {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $t {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
            fn array_compatible(ty: &PgTypeInfo) -> bool {
                <&str as PgHasArrayType>::array_compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $t {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $t {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<&str as Decode<Postgres>>::decode(value)?.parse::<$t>()?)
            }
        }
    )*};
}

stored_as_text!(
    crate::requisition::Status,
    crate::role::Role,
    crate::fund::PaymentMethod,
    crate::fund::MovementKind
);
