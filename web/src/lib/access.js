// lib/access.js — which role may open which page (mirrors the API's access levels of
// src/api/routes.c: alerts for operators, the audit trail for auditors, administration for
// admins; statistics for analysts and operators). The navigation shows only allowed pages; the
// API still refuses what a role may not do — this only avoids offering it.
export const ROLES = ['admin', 'operator', 'analyst', 'auditor'];

export const can = {
  stats: (role) => ['admin', 'operator', 'analyst'].includes(role),
  alerts: (role) => ['admin', 'operator'].includes(role),
  audit: (role) => ['admin', 'auditor'].includes(role),
  admin: (role) => role === 'admin',
};
