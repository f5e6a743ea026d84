package sqlite

import "github.com/pipelined/pipelined/internal/store"

// The SQL of the store, in one place. Every query here is prepared once per
// pool and reused (see stmts.go); parsing and planning were a quarter of a
// write's CPU time before.
const (
	pipelineCols = `name, version, pipeline_type, execution_mode, created, updated, definition`

	qPipelineLatest = `SELECT ` + pipelineCols + ` FROM pipelines
		WHERE name = ? ORDER BY version DESC LIMIT 1`
	qPipelineVersion = `SELECT ` + pipelineCols + ` FROM pipelines
		WHERE name = ? AND version = ?`
	qPipelineList = `SELECT name, version, pipeline_type, execution_mode, created, updated
		FROM pipeline_heads WHERE name > ? ORDER BY name LIMIT ?`
	qPipelineCount  = `SELECT count(*) FROM pipeline_heads`
	qPipelineInsert = `INSERT INTO pipelines (` + pipelineCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qHeadInsert     = `INSERT INTO pipeline_heads
		(name, version, pipeline_type, execution_mode, created, updated) VALUES (?, 1, ?, ?, ?, ?)`
	// qHeadAdvance moves the head from the version the update read; no row
	// changes when another writer moved it first.
	qHeadAdvance = `UPDATE pipeline_heads
		SET version = ?, pipeline_type = ?, execution_mode = ?, updated = ?
		WHERE name = ? AND version = ?`
	qHeadDelete      = `DELETE FROM pipeline_heads WHERE name = ?`
	qPipelinesDelete = `DELETE FROM pipelines WHERE name = ?`

	qTags      = `SELECT key, value FROM tags WHERE resource = ? ORDER BY key`
	qTagsClear = `DELETE FROM tags WHERE resource = ?`
	// qTagPut lets the last of duplicate keys win instead of failing.
	qTagPut = `INSERT INTO tags (resource, key, value) VALUES (?, ?, ?)
		ON CONFLICT (resource, key) DO UPDATE SET value = excluded.value`

	actionTypeCols = `category, owner, provider, version, deleted, created, updated, definition`
	qActionType    = `SELECT ` + actionTypeCols + ` FROM action_types
		WHERE category = ? AND owner = ? AND provider = ? AND version = ?`
	qActionTypePut = `INSERT INTO action_types (` + actionTypeCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (category, owner, provider, version) DO UPDATE SET
			deleted = excluded.deleted, updated = excluded.updated, definition = excluded.definition`

	qEnqueue = `INSERT INTO work_items (queue, created, payload) VALUES (?, ?, ?)`
	// qClaim selects and claims in one statement; RETURNING has no order.
	qClaim = `UPDATE work_items
		SET claimed_by = ?, claimed_until = ?, attempts = attempts + 1
		WHERE id IN (
			SELECT id FROM work_items
			WHERE queue = ? AND (claimed_until IS NULL OR claimed_until <= ?)
			ORDER BY id LIMIT ?)
		RETURNING id, queue, attempts, claimed_by, claimed_until, created, payload`
	qComplete = `DELETE FROM work_items WHERE id = ? AND claimed_by = ?`

	// qLeaseAcquire inserts a free lease and takes over a held one only
	// when holder has it or it expired; otherwise it changes no row.
	qLeaseAcquire = `INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.holder = excluded.holder OR leases.expires <= ?`
	qLeaseRelease = `DELETE FROM leases WHERE name = ? AND holder = ?`

	// The engine's state (engine.go). A PipelineTx's queries name its
	// pipeline, so it never reads or changes another pipeline's rows.
	// qRuntime tells NULL (no runtime) from an empty document, which the
	// driver returns as nil too.
	qRuntime    = `SELECT doc IS NULL, doc FROM pipeline_runtime WHERE pipeline = ?`
	qRuntimePut = `INSERT INTO pipeline_runtime (pipeline, doc) VALUES (?, ?)
		ON CONFLICT (pipeline) DO UPDATE SET doc = excluded.doc`
	qRuntimeDelete = `DELETE FROM pipeline_runtime WHERE pipeline = ?`

	executionCols = `seq, id, pipeline, status, active, client_token, created, updated, doc`
	qExecution    = `SELECT ` + executionCols + ` FROM executions WHERE id = ? AND pipeline = ?`
	// qExecutionByToken repeats the partial unique index's WHERE, so that
	// SQLite may use the index.
	qExecutionByToken = `SELECT ` + executionCols + ` FROM executions
		WHERE pipeline = ? AND client_token = ? AND client_token <> ''`
	qExecutionsActive = `SELECT ` + executionCols + ` FROM executions
		WHERE pipeline = ? AND active = 1 ORDER BY seq`
	qExecutionsList = `SELECT ` + executionCols + ` FROM executions
		WHERE pipeline = ? AND seq < ? ORDER BY seq DESC LIMIT ?`
	// qExecutionPut inserts (seq from AUTOINCREMENT) or updates by id, and
	// returns no row when the id is another pipeline's. A taken client
	// token fails the executions_client_token index.
	qExecutionPut = `INSERT INTO executions
		(id, pipeline, status, active, client_token, created, updated, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			status = excluded.status, active = excluded.active, client_token = excluded.client_token,
			created = excluded.created, updated = excluded.updated, doc = excluded.doc
		WHERE executions.pipeline = excluded.pipeline
		RETURNING seq`
	qExecutionsDelete = `DELETE FROM executions WHERE pipeline = ?`

	// qTimerPut changes no row when the id is another pipeline's.
	qTimerPut = `INSERT INTO timers (id, pipeline, due, payload) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET due = excluded.due, payload = excluded.payload
		WHERE timers.pipeline = excluded.pipeline`
	qTimerDelete  = `DELETE FROM timers WHERE id = ? AND pipeline = ?`
	qTimersDue    = `SELECT id, pipeline, due, payload FROM timers WHERE due <= ? ORDER BY due, id LIMIT ?`
	qTimersDelete = `DELETE FROM timers WHERE pipeline = ?`

	// jobCols: nonce_hash, never the nonce (the legacy nonce column holds
	// only the clear nonces of rows from before migration 00006, until
	// HashLegacyNonces hashes them).
	jobCols = `id, category, owner, provider, version, query_value, pipeline, execution_id,
		status, nonce_hash, deadline, created, updated, doc`
	qJob           = `SELECT ` + jobCols + ` FROM jobs WHERE id = ?`
	qJobInPipeline = `SELECT ` + jobCols + ` FROM jobs WHERE id = ? AND pipeline = ?`
	// qJobPut changes no row when the id is another pipeline's.
	qJobPut = `INSERT INTO jobs (` + jobCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			category = excluded.category, owner = excluded.owner, provider = excluded.provider,
			version = excluded.version, query_value = excluded.query_value,
			execution_id = excluded.execution_id, status = excluded.status, nonce_hash = excluded.nonce_hash,
			nonce = '', deadline = excluded.deadline, created = excluded.created, updated = excluded.updated,
			doc = excluded.doc
		WHERE jobs.pipeline = excluded.pipeline`
	qJobsDelete = `DELETE FROM jobs WHERE pipeline = ?`

	// qJobsClaimable finds the jobs ClaimJobs takes, oldest first, on the
	// jobs_claim index: its status IN (...) term is the index's WHERE, word
	// for word. Arguments: the action type key, now, [query value,] limit.
	qJobsClaimableWhere = `WHERE category = ? AND owner = ? AND provider = ? AND version = ?
			AND status IN ('` + store.JobQueued + `', '` + store.JobDispatched + `')
			AND (status = '` + store.JobQueued + `' OR deadline <= ?)`
	qJobsClaimable = `SELECT rowid, id FROM jobs ` + qJobsClaimableWhere + `
		ORDER BY created, id LIMIT ?`
	qJobsClaimableQuery = `SELECT rowid, id FROM jobs ` + qJobsClaimableWhere + ` AND query_value = ?
		ORDER BY created, id LIMIT ?`
	// qJobsDispatch dispatches the jobs of a JSON object {rowid: nonce hash, ...}
	// in one statement (one statement per job took twice as long for 10),
	// looking each up by rowid (ids are keys of no JSON: a string that is
	// not UTF-8 would not survive it).
	qJobsDispatch = `UPDATE jobs SET status = '` + store.JobDispatched + `', nonce_hash = n.value, nonce = '', deadline = ?, updated = ?
		FROM json_each(?) AS n WHERE jobs.rowid = CAST(n.key AS INTEGER)
		RETURNING jobs.rowid, jobs.id, category, owner, provider, version, query_value, pipeline, execution_id,
			status, nonce_hash, deadline, created, updated, doc`
	// qJobsLegacyNonces finds rows that still hold a clear nonce (on the
	// jobs_legacy_nonce index); qJobLegacyNonceHash replaces one, provided
	// that it still holds the nonce that was hashed.
	qJobsLegacyNonces   = `SELECT nonce, ` + jobCols + ` FROM jobs WHERE nonce <> '' ORDER BY id LIMIT ?`
	qJobLegacyNonceHash = `UPDATE jobs SET nonce_hash = ?, nonce = '' WHERE id = ? AND nonce = ?`
)

// The group commit's savepoint statements (writer.go): one of each per
// write of a batch.
const (
	qSavepoint  = `SAVEPOINT w`
	qRelease    = `RELEASE w`
	qRollbackTo = `ROLLBACK TO w`
)

// writeQueries are prepared on the write connection when the store opens:
// preparing later would need a connection while a transaction may hold the
// only one.
var writeQueries = []string{
	qSavepoint, qRelease, qRollbackTo,
	qPipelineLatest, qPipelineVersion, qPipelineInsert, qHeadInsert, qHeadAdvance, qHeadDelete, qPipelinesDelete,
	qTags, qTagsClear, qTagPut,
	qActionType, qActionTypePut,
	qEnqueue, qClaim, qComplete,
	qLeaseAcquire, qLeaseRelease,
	qRuntime, qRuntimePut, qRuntimeDelete,
	qExecution, qExecutionByToken, qExecutionsActive, qExecutionPut, qExecutionsDelete,
	qTimerPut, qTimerDelete, qTimersDelete,
	qJobInPipeline, qJobPut, qJobsDelete, qJobsClaimable, qJobsClaimableQuery, qJobsDispatch,
}
