// Package auditlog exports pacsnet audit entries ([consent.Entry]) to the
// outside world: as DICOM audit messages, as RFC 5424 syslog messages, and
// as a stream to a syslog collector that survives the collector being
// down.
//
// It imports the standard library and consent, nothing else: it knows
// nothing of the node, Badger or libp2p (peer IDs are written in their
// string form). deps_test.go holds the rule.
//
// # Formats
//
// [DICOMXML] writes one entry as a DICOM audit message (PS3.15 A.5.1, the
// schema IHE ATNA audit repositories read): EventIdentification with the
// event of the table below, EventActionCode, EventDateTime (UTC),
// EventOutcomeIndicator (0 success, 4 minor failure for a denial, 8
// serious failure for a failed transfer), EventTypeCode where the event
// has one and EventOutcomeDescription holding the entry's reason code (and
// count=N for aggregated entries); an ActiveParticipant for the local user
// (UserID = Actor, unless the actor is "system"), one for the node
// (UserID = the node's peer ID, role 110150 Application) and one for the
// remote facility when the entry names one (UserID = its peer ID, UserName
// = its name, role 110153 Source or 110152 Destination when data moved);
// AuditSourceIdentification with the facility; and
// ParticipantObjectIdentification for the study (type 2, role 3, ID type
// 110180 Study Instance UID) and the grant (type 2, role 13 Security
// Resource, the local ID type "grant" of code system 99PACSNET). A message
// holds no field the entry does not have: entries carry no patient names
// or IDs, and neither do the messages.
//
// [Syslog] writes one entry as an RFC 5424 message:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [pacsnet@32473 seq="…" hash="…" action="…"] MSG
//
// PRI is facility 10 (security/authorization, as IHE ITI-20 asks) with
// severity 5 (notice), 4 (warning) for a denial or 3 (error) for a
// failure. MSG is the
// entry as the ledger stores it, in JSON ([FormatJSON], MSGID
// "pacsnet-audit"; its hash can be checked with Entry.ComputeHash), or the
// DICOM audit message ([FormatDICOM], MSGID "DICOM+RFC3881" as ITI-20
// names messages of the DICOM schema). The structured data repeats seq,
// hash and action so that a collector can filter and find duplicates
// without parsing MSG.
//
// # Events
//
// Each pacsnet action maps to one event of PS3.15 Table A.5.3-1 in one
// table (events.go); a test fails when an Act* constant of consent or api
// has no row:
//
//	import, fetch-completed/-failed    110104 DICOM Instances Transferred (C)
//	dicom-move/-get/-send/-forward     110104 DICOM Instances Transferred (R)
//	export                             110106 Export (R)
//	manifest-sent/-received,
//	fetch-allowed                      110102 Begin Transferring DICOM Instances
//	instance-read, storage-commitment  110103 DICOM Instances Accessed (R)
//	query                              110112 Query
//	login, login-failed/-locked        110114 User Authentication, 110122 Login
//	logout                             110114 User Authentication, 110123 Logout
//	grant, revoke                      110113 Security Alert, 110135 Object Security Attributes Changed
//	fetch-denied, access-requested     110113 Security Alert, 110132 Use of Restricted Function
//	manifest-rejected, association-*   110113 Security Alert, 110126 Node Authentication
//	peer-added/-removed                110113 Security Alert, 110129 Security Configuration
//	ae-added/-removed                  110113 Security Alert, 110128 Network Configuration
//	user-role-changed                  110113 Security Alert, 110136 Security Roles Changed
//	user-*, token-*                    110113 Security Alert, 110137 User security Attributes Changed
//	audit-verified, audit-exported     110101 Audit Log Used (R) (reserved; not yet recorded)
//	anything else                      110100 Application Activity
//
// # Delivery
//
// A [Shipper] reads entries from a [Reader] (the ledger) after a durable
// [Cursor] and sends them to a collector over TCP or TLS (RFC 5425), each
// framed by octet counting (RFC 6587: "LEN SP MSG"), at most Config.Batch
// entries in memory at a time. Delivery is at least once:
//
//   - An entry counts as delivered, and the cursor moves past it, only
//     after its bytes were written and (on Linux) the collector's TCP
//     stack acknowledged them. Syslog has no application-level
//     acknowledgement, so that is the most a sender can know: a collector
//     that dies with acknowledged bytes unread, or with messages in a
//     memory queue not yet written, loses them. Give the collector a
//     disk-assisted queue when that matters.
//   - After a connection breaks, the shipper reconnects with exponential
//     back-off and resends from the cursor, and also the Batch entries
//     before it, to cover what the collector may have lost. The collector
//     may therefore see an entry twice; seq and hash in the structured
//     data identify duplicates.
//   - While the collector is down nothing is dropped: entries stay in the
//     ledger and the cursor stays put, so the backlog ([Status]) grows and
//     is sent when the collector is back, however long that takes.
//
// [FileCursor] keeps the cursor in a small file, replaced atomically
// (write, fsync, rename, fsync of the directory) with mode 0600.
package auditlog
