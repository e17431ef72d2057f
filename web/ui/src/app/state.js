// Client state kept out of the URL: the selected patient (patient data must
// never be in a URL) and the fetches and sends started in this session.

const PATIENT_KEY = 'pacsnet.patient';
const FETCHES_KEY = 'pacsnet.fetches';
const SENDS_KEY = 'pacsnet.sends';
const GRANT_KEY = 'pacsnet.grant-draft';

export const session = { me: null };

function load(key, fallback) {
  try {
    const v = sessionStorage.getItem(key);
    return v ? JSON.parse(v) : fallback;
  } catch {
    return fallback;
  }
}

function save(key, v) {
  try {
    sessionStorage.setItem(key, JSON.stringify(v));
  } catch {
    /* storage unavailable: memory only */
  }
}

let patient = load(PATIENT_KEY, null);

// selectPatient keeps {patient_id, issuer, patient_name, birth_date, sex}.
export function selectPatient(p) {
  patient = p
    ? {
        patient_id: p.patient_id || '',
        issuer: p.issuer_of_patient_id || p.issuer || '',
        patient_name: p.patient_name || '',
        birth_date: p.patient_birth_date || p.birth_date || '',
        sex: p.patient_sex || p.sex || '',
      }
    : null;
  if (patient) save(PATIENT_KEY, patient);
  else sessionStorage.removeItem(PATIENT_KEY);
}

export function selectedPatient() {
  return patient;
}

function remember(key, id) {
  const list = load(key, []).filter((x) => x !== id);
  list.unshift(id);
  save(key, list.slice(0, 50));
}

export function rememberFetch(id) {
  remember(FETCHES_KEY, id);
}

export function knownFetches() {
  return load(FETCHES_KEY, []);
}

export function rememberSend(id) {
  remember(SENDS_KEY, id);
}

export function knownSends() {
  return load(SENDS_KEY, []);
}

// A grant to prefill in the Grants page ({study_uid} or {patient_id,
// issuer}), set by "Grant to a partner" on a study or a patient; taken
// once.
export function draftGrant(d) {
  save(GRANT_KEY, d);
}

export function takeGrantDraft() {
  const d = load(GRANT_KEY, null);
  try {
    sessionStorage.removeItem(GRANT_KEY);
  } catch {
    /* nothing kept */
  }
  return d;
}

export function clearSession() {
  for (const k of [PATIENT_KEY, FETCHES_KEY, SENDS_KEY, GRANT_KEY]) sessionStorage.removeItem(k);
  patient = null;
}
