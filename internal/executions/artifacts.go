package executions

import (
	"context"
	"log/slog"

	"github.com/pipelined/pipelined/internal/artifacts"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// SetArtifactMinter makes the job-data answers (PollForJobs, GetJobDetails,
// GetThirdPartyJobDetails) carry artifactCredentials issued by m; log gets
// the failures PollForJobs cannot answer with. Call it before serving.
// Without a minter, job data has no artifactCredentials.
func (s *Service) SetArtifactMinter(m artifacts.Minter, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.minter, s.log = m, log
}

// addArtifactCredentials puts the job's artifact credentials into its job
// data: valid ones, renewed once less than half of their lifetime is left,
// so that every answer serves for renewal. A finished job gets none (its
// credentials no longer work either), nor does a job without artifacts in
// an S3 bucket. The encryptionKey of the artifact store is already in the
// job data, as the engine wrote it.
func (s *Service) addArtifactCredentials(ctx context.Context, j store.Job, data *wire.JobData) error {
	if s.minter == nil || !artifacts.JobActive(j.Status) {
		return nil
	}
	scope, ok := artifacts.ScopeOf(j.ID, data)
	if !ok {
		return nil
	}
	creds, _, err := s.minter.Mint(ctx, scope)
	if err != nil {
		return err
	}
	data.ArtifactCredentials = &creds
	return nil
}

// logArtifactError logs a failure to issue a job's credentials (the error
// never holds a secret).
func (s *Service) logArtifactError(j store.Job, err error) {
	s.log.Error("could not issue artifact credentials; the job is handed out without them", "job_id", j.ID, "err", err)
}
