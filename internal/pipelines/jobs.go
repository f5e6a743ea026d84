package pipelines

import (
	"context"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/wire"
)

// PollForJobs checks the action type as CodePipeline does: polling for a
// type that does not exist or was deleted fails with
// ActionTypeNotFoundException. Handing out jobs is not built yet, so a poll
// for a live type answers that plainly instead of an empty success that
// would keep a worker waiting for jobs that can never come.
func (s *Service) PollForJobs(ctx context.Context, in *wire.PollForJobsInput) (*wire.PollForJobsOutput, error) {
	if err := s.requirePollableType(ctx, in.ActionTypeId, "Custom"); err != nil {
		return nil, err
	}
	return nil, wire.NotImplemented("PollForJobs")
}

// PollForThirdPartyJobs: as PollForJobs, for ThirdParty action types.
func (s *Service) PollForThirdPartyJobs(ctx context.Context, in *wire.PollForThirdPartyJobsInput) (*wire.PollForThirdPartyJobsOutput, error) {
	if err := s.requirePollableType(ctx, in.ActionTypeId, "ThirdParty"); err != nil {
		return nil, err
	}
	return nil, wire.NotImplemented("PollForThirdPartyJobs")
}

func (s *Service) requirePollableType(ctx context.Context, id *wire.ActionTypeId, owner string) error {
	key := actiontypes.KeyOf(id)
	if key.Owner != owner {
		return wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s cannot be polled here: its owner must be %s", key, owner)
	}
	t, err := s.resolveType(ctx, key)
	if err != nil {
		return err
	}
	if t == nil {
		return wire.Errorf(wire.ErrActionTypeNotFound, "Action type %s does not exist", key)
	}
	return nil
}
