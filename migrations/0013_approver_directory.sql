-- Routing reads who holds a role in a company (issue [workflow]): at every submission the
-- command side looks up the active holders of the chain's roles and the admins of the
-- requisition's company (`CommandService::directory`, `roles && $2 AND company_id = $1`). This
-- index answers it without reading every user of the company; `users_company_idx` (0011)
-- narrows by company. `users` is kept with the users' events in the same transaction.
CREATE INDEX users_roles_idx ON users USING gin (roles) WHERE active;
