//! Tamper evidence: being written (issue [replay]).
