package main

// The echo proto (benches/proto/echo.proto) written by hand the way protoc-gen-go 1.3.5 would
// emit it: a struct with `protobuf:` tags and the XXX_ methods that route through
// golang/protobuf's table-driven marshaller, and a grpc.ServiceDesc. No protoc is involved.
// The file descriptor (Descriptor()) is left out: neither the codec nor grpc-go needs it.

import (
	"context"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
)

// Payload is bench.Payload: opaque bytes.
type Payload struct {
	Data                 []byte   `protobuf:"bytes,1,opt,name=data,proto3" json:"data,omitempty"`
	XXX_NoUnkeyedLiteral struct{} `json:"-"`
	XXX_unrecognized     []byte   `json:"-"`
	XXX_sizecache        int32    `json:"-"`
}

func (m *Payload) Reset()         { *m = Payload{} }
func (m *Payload) String() string { return proto.CompactTextString(m) }
func (*Payload) ProtoMessage()    {}

func (m *Payload) XXX_Unmarshal(b []byte) error { return xxx_messageInfo_Payload.Unmarshal(m, b) }
func (m *Payload) XXX_Marshal(b []byte, deterministic bool) ([]byte, error) {
	return xxx_messageInfo_Payload.Marshal(b, m, deterministic)
}
func (m *Payload) XXX_Merge(src proto.Message) { xxx_messageInfo_Payload.Merge(m, src) }
func (m *Payload) XXX_Size() int               { return xxx_messageInfo_Payload.Size(m) }
func (m *Payload) XXX_DiscardUnknown()         { xxx_messageInfo_Payload.DiscardUnknown(m) }

var xxx_messageInfo_Payload proto.InternalMessageInfo

func init() {
	proto.RegisterType((*Payload)(nil), "bench.Payload")
}

// echoServer is the service implementation.
type echoServer interface {
	Echo(context.Context, *Payload) (*Payload, error)
	Feed(*Payload, grpc.ServerStream) error
	Sink(context.Context, *Payload) (*Payload, error)
}

func unaryHandler(method string, call func(echoServer, context.Context, *Payload) (*Payload, error)) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: method,
		Handler: func(srv interface{}, ctx context.Context, dec func(interface{}) error, interceptor grpc.UnaryServerInterceptor) (interface{}, error) {
			in := new(Payload)
			if err := dec(in); err != nil {
				return nil, err
			}
			if interceptor == nil {
				return call(srv.(echoServer), ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/bench.Echo/" + method}
			handler := func(ctx context.Context, req interface{}) (interface{}, error) {
				return call(srv.(echoServer), ctx, req.(*Payload))
			}
			return interceptor(ctx, in, info, handler)
		},
	}
}

var feedDesc = grpc.StreamDesc{
	StreamName: "Feed",
	Handler: func(srv interface{}, stream grpc.ServerStream) error {
		in := new(Payload)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		return srv.(echoServer).Feed(in, stream)
	},
	ServerStreams: true,
}

var echoServiceDesc = grpc.ServiceDesc{
	ServiceName: "bench.Echo",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{
		unaryHandler("Echo", echoServer.Echo),
		unaryHandler("Sink", echoServer.Sink),
	},
	Streams:  []grpc.StreamDesc{feedDesc},
	Metadata: "echo.proto",
}
