package server

import (
	"context"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pipelined/pipelined/internal/builtin"
)

// builtinOptions configures the built-in S3 actions (internal/builtin):
// Config.BuiltinS3 when set (tests); else the external S3 of
// --artifact-s3-endpoint with the standard AWS credential chain (or
// Config.ArtifactAWSConfig); else the embedded S3 store at the server's
// public URL, signed with the root credentials.
func (s *Server) builtinOptions() builtin.Options {
	var o builtin.Options
	switch {
	case s.cfg.BuiltinS3 != nil:
		o = *s.cfg.BuiltinS3
	case s.cfg.ArtifactS3Endpoint != "":
		o.Endpoint = s.cfg.ArtifactS3Endpoint
		if c := s.cfg.ArtifactAWSConfig; c != nil {
			o.Credentials, o.Region = c.Credentials, c.Region
		} else if c, err := awsconfig.LoadDefaultConfig(context.Background()); err != nil {
			s.log.Warn("built-in S3 actions: cannot load the AWS configuration; S3 requests go unsigned", "err", err)
		} else {
			o.Credentials, o.Region = c.Credentials, c.Region
		}
	default:
		o.Endpoint = s.PublicURL
		o.Credentials = awscreds.NewStaticCredentialsProvider(s.root.AccessKeyID, s.root.SecretAccessKey, "")
		o.EnsureArtifactBucket = s.ensureArtifactBucket
	}
	if o.Region == "" {
		o.Region = s.cfg.Region
	}
	if o.PollInterval == 0 {
		o.PollInterval = s.cfg.SourcePollInterval
	}
	if o.ShutdownGrace == 0 {
		o.ShutdownGrace = s.cfg.ShutdownTimeout / 2
	}
	if o.Logger == nil {
		o.Logger = s.log
	}
	s.gitOptions(&o) // connections.go
	return o
}
