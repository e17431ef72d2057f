// Package dimse is pacsnet's DICOM upper layer (PS3.8) and message
// exchange (PS3.7): the PDUs and their items, the command set, and the
// association that carries DIMSE messages between two application
// entities.
//
// It knows nothing of the archive: the node answers C-STORE, C-FIND,
// C-MOVE and C-GET through small interfaces. Of pacsnet it imports only
// dicomio. Every decoder is bounded (a PDU may not claim more than the
// reader's limit; items must fit their PDU) and fuzzed.
package dimse
