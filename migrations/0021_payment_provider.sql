-- Payment provider (issue #14 [treasury]): where a payment through a provider goes, and when
-- its current attempt was sent.
--
-- `destination`: the normalised mobile number (`254…`) or bank account the provider pays.
-- `submitted_at`: when the current attempt (`attempts`, id `{id}-{attempts}`) was last sent;
-- the scheduler's timeout counts from it. `last_result_reason`: the provider's description of
-- `last_result_code`.
ALTER TABLE provider_payments
    ADD COLUMN destination        text,
    ADD COLUMN submitted_at       timestamptz,
    ADD COLUMN last_result_reason text;
