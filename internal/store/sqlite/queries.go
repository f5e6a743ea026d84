package sqlite

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
)

// writeQueries are prepared on the write connection when the store opens:
// preparing later would need a connection while a transaction may hold the
// only one.
var writeQueries = []string{
	qPipelineLatest, qPipelineInsert, qHeadInsert, qHeadAdvance, qHeadDelete, qPipelinesDelete,
	qTags, qTagsClear, qTagPut,
	qActionType, qActionTypePut,
	qEnqueue, qClaim, qComplete,
	qLeaseAcquire, qLeaseRelease,
}
