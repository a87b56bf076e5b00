-- The budgets an open `budget_exceeded` alert's requisition would exceed (issue #15 [reports]):
-- the alerts projection's memory, like `alert_pending_variances`. One row per flagged budget
-- of the requisition's latest submission, with the amount the budget must reach for that flag
-- to clear (what it had consumed when flagged, plus the requisition's amount). A `BudgetSet`
-- that raises a budget to it removes the row; the alert resolves itself when its last row
-- goes. Written in the projection's batch transaction; never part of a rebuild.
CREATE TABLE alert_budget_flags (
    requisition_id uuid    NOT NULL,
    budget_id      uuid    NOT NULL,
    needed         numeric NOT NULL,
    PRIMARY KEY (requisition_id, budget_id)
);
CREATE INDEX alert_budget_flags_budget_idx ON alert_budget_flags (budget_id, needed);
