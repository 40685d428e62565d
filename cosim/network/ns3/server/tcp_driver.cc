// cosim ns-3 TCP transport (comparison against the lossless default), JIT-compiled by cppyy.
// SPDX-License-Identifier: GPL-2.0-only (links ns-3).
//
// A separate ns-3 fabric with the internet stack: one PointToPointChannel per cable (a
// directed link and its reverse; each side transmits at its own link's rate), an IPv4 /30
// per cable, shortest-path routes from ns-3's global routing (no ECMP: TCP meets no
// reordering). Flows are TCP connections (NewReno, or DCTCP with RED step-marking queues
// at K packets), one listening socket per flow. The connection handshake, slow start and
// ACK clocking are all part of the measured time; last-byte arrival is recorded when the
// receiver has read the flow's last byte. Queues are deep (no drops), as in the lossless
// fabric; DCTCP keeps them short by ECN.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cosim_ns3
{
using namespace ns3;

class TcpFabric
{
  public:
    // dctcp: RED step-marking root queue discs (ECN) and TcpDctcp; else TcpNewReno, no qdisc.
    std::string Build(int32_t numNodes,
                      int32_t numGpus,
                      int32_t numLinks,
                      const int32_t* linkSrc,
                      const int32_t* linkDst,
                      const uint64_t* linkBps,
                      const int64_t* linkDelayPs,
                      uint32_t queuePackets,
                      bool dctcp,
                      uint32_t frameBytes)
    {
        m_dctcp = dctcp;
        m_numGpus = numGpus;
        for (int32_t n = 0; n < numNodes; ++n)
        {
            m_nodes.Add(CreateObject<Node>());
        }
        InternetStackHelper stack;
        stack.SetIpv6StackInstall(false);
        stack.Install(m_nodes);
        TypeId cc = dctcp ? TcpDctcp::GetTypeId() : TcpNewReno::GetTypeId();
        for (int32_t n = 0; n < numNodes; ++n)
        {
            m_nodes.Get(n)->GetObject<TcpL4Protocol>()->SetAttribute("SocketType",
                                                                    TypeIdValue(cc));
        }
        // Pair each directed link with an unpaired reverse link: one cable, one channel.
        std::map<std::pair<int32_t, int32_t>, std::vector<int32_t>> open;
        std::vector<int32_t> reverse(numLinks, -1);
        for (int32_t l = 0; l < numLinks; ++l)
        {
            auto it = open.find({linkDst[l], linkSrc[l]});
            if (it != open.end() && !it->second.empty())
            {
                int32_t r = it->second.back();
                it->second.pop_back();
                reverse[l] = r;
                reverse[r] = l;
            }
            else
            {
                open[{linkSrc[l], linkDst[l]}].push_back(l);
            }
        }
        m_gpuAddr.assign(numGpus, Ipv4Address());
        uint32_t net = 0;
        TrafficControlHelper tch;
        for (int32_t l = 0; l < numLinks; ++l)
        {
            int32_t r = reverse[l];
            if (r >= 0 && r < l)
            {
                continue; // cable made with its partner
            }
            Ptr<Node> a = m_nodes.Get(linkSrc[l]);
            Ptr<Node> b = m_nodes.Get(linkDst[l]);
            uint64_t bpsA = linkBps[l];
            uint64_t bpsB = r >= 0 ? linkBps[r] : linkBps[l];
            Ptr<PointToPointNetDevice> da = MakeDevice(a, bpsA, dctcp ? 4 : queuePackets);
            Ptr<PointToPointNetDevice> db = MakeDevice(b, bpsB, dctcp ? 4 : queuePackets);
            Ptr<PointToPointChannel> ch = CreateObject<PointToPointChannel>();
            ch->SetAttribute("Delay", TimeValue(PicoSeconds(linkDelayPs[l])));
            da->Attach(ch);
            db->Attach(ch);
            if (dctcp)
            {
                InstallRed(da, bpsA, linkDelayPs[l], queuePackets, frameBytes);
                InstallRed(db, bpsB, linkDelayPs[l], queuePackets, frameBytes);
            }
            // 10.0.0.0/8 in /30s: base + 4*net, hosts +1 and +2.
            uint32_t base = (10u << 24) + 4 * (net++);
            Ipv4Address ipA(base + 1), ipB(base + 2);
            AddAddress(a, da, ipA);
            AddAddress(b, db, ipB);
            if (linkSrc[l] < numGpus && m_gpuAddr[linkSrc[l]] == Ipv4Address())
            {
                m_gpuAddr[linkSrc[l]] = ipA;
            }
            if (linkDst[l] < numGpus && m_gpuAddr[linkDst[l]] == Ipv4Address())
            {
                m_gpuAddr[linkDst[l]] = ipB;
            }
            da->TraceConnectWithoutContext("PhyRxEnd", MakeCallback(&TcpFabric::OnHop, this));
            db->TraceConnectWithoutContext("PhyRxEnd", MakeCallback(&TcpFabric::OnHop, this));
            m_devices.push_back(da);
            m_devices.push_back(db);
        }
        Ipv4GlobalRoutingHelper::RecomputeRoutingTables();
        return "";
    }

    // As Fabric::SetBudget (flow_driver.cc); checked on every packet hop.
    void SetBudget(uint64_t maxEvents, double maxWallS)
    {
        m_maxEvents = maxEvents;
        m_maxWallS = maxWallS;
    }

    std::string SetFrameBytes(uint32_t frameBytes)
    {
        for (auto& d : m_devices)
        {
            if (!d->SetMtu(frameBytes))
            {
                return "device refused mtu " + std::to_string(frameBytes);
            }
        }
        // IPv4 (20) + TCP (20) + timestamp option (12) per segment.
        m_segment = frameBytes - 52;
        return "";
    }

    std::string Run(int32_t numFlows,
                    const int32_t* src,
                    const int32_t* dst,
                    const int64_t* size,
                    const int64_t* startPs,
                    int64_t* finishPs,
                    double minRtoS,
                    double limitS)
    {
        Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(m_segment));
        Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(1u << 26));
        Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(1u << 26));
        Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(10));
        Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(1));
        Config::SetDefault("ns3::TcpSocket::ConnTimeout", TimeValue(Seconds(minRtoS)));
        Config::SetDefault("ns3::TcpSocketBase::MinRto", TimeValue(Seconds(minRtoS)));
        Config::SetDefault("ns3::TcpSocketBase::ClockGranularity", TimeValue(NanoSeconds(1)));
        // Closed sockets would linger 2 x 120 s of simulated time otherwise.
        Config::SetDefault("ns3::TcpSocketBase::MaxSegLifetime", DoubleValue(1e-6));
        Config::SetDefault("ns3::TcpSocketBase::UseEcn",
                           EnumValue(m_dctcp ? TcpSocketState::On : TcpSocketState::Off));
        m_size.assign(size, size + numFlows);
        m_toSend.assign(size, size + numFlows);
        m_recv.assign(numFlows, 0);
        m_finish = finishPs;
        m_numFlows = numFlows;
        m_done = 0;
        m_hops = 0;
        m_failed = "";
        m_sockets.clear();
        for (int32_t f = 0; f < numFlows; ++f)
        {
            finishPs[f] = -1;
        }
        // One listening socket per flow, on a port unique per destination in this batch.
        std::vector<uint32_t> nextPort(m_numGpus, 10000);
        m_port.assign(numFlows, 0);
        for (int32_t f = 0; f < numFlows; ++f)
        {
            if (nextPort[dst[f]] > 65535)
            {
                return "more than 55536 flows to one GPU in a batch";
            }
            m_port[f] = nextPort[dst[f]]++;
            Ptr<Socket> sink = Socket::CreateSocket(m_nodes.Get(dst[f]),
                                                    TcpSocketFactory::GetTypeId());
            sink->Bind(InetSocketAddress(Ipv4Address::GetAny(), m_port[f]));
            sink->Listen();
            sink->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                                    MakeCallback(&TcpFabric::OnAccept, this, (uint32_t)f));
            m_sockets.push_back(sink);
        }
        m_src = src;
        m_dst = dst;
        // RED draws random numbers even when it marks by a step; restart its streams so
        // that a batch's result does not depend on the batches before it.
        for (size_t i = 0; i < m_red.size(); ++i)
        {
            m_red[i]->AssignStreams(1000 + (int64_t)i);
        }
        m_events0 = Simulator::GetEventCount();
        m_wall0 = std::chrono::steady_clock::now();
        m_over = "";
        m_t0 = Simulator::Now();
        for (int32_t f = 0; f < numFlows; ++f)
        {
            Simulator::Schedule(PicoSeconds(startPs[f]), &TcpFabric::Start, this, (uint32_t)f);
        }
        m_abort = Simulator::Schedule(Seconds(limitS), &TcpFabric::Abort, this);
        Simulator::Run();
        m_abort.Cancel();
        m_events = Simulator::GetEventCount() - m_events0;
        for (auto& s : m_sockets)
        {
            s->Close();
        }
        m_sockets.clear();
        m_finish = nullptr;
        if (!m_over.empty())
        {
            return m_over;
        }
        if (!m_failed.empty())
        {
            return m_failed;
        }
        if (m_done != m_numFlows)
        {
            return std::to_string(m_numFlows - m_done) + " TCP flows did not complete within " +
                   std::to_string(limitS) + " s of simulated time";
        }
        return "";
    }

    uint64_t Events() const
    {
        return m_events;
    }

    uint64_t PacketHops() const
    {
        return m_hops;
    }

  private:
    Ptr<PointToPointNetDevice> MakeDevice(Ptr<Node> node, uint64_t bps, uint32_t queuePackets)
    {
        Ptr<PointToPointNetDevice> d = CreateObject<PointToPointNetDevice>();
        d->SetAddress(Mac48Address::Allocate());
        d->SetDataRate(DataRate(bps));
        Ptr<DropTailQueue<Packet>> q = CreateObject<DropTailQueue<Packet>>();
        q->SetMaxSize(QueueSize(QueueSizeUnit::PACKETS, queuePackets));
        d->SetQueue(q);
        // As PointToPointHelper does: the queue interface lets a queue disc stop when the
        // device queue is full (flow control) instead of overflowing it.
        Ptr<NetDeviceQueueInterface> ndqi = CreateObject<NetDeviceQueueInterface>();
        ndqi->GetTxQueue(0)->ConnectQueueTraces(q);
        d->AggregateObject(ndqi);
        node->AddDevice(d);
        return d;
    }

    // DCTCP marking (Alizadeh et al., SIGCOMM 2010): mark CE when the instantaneous queue
    // exceeds K; K >= C x RTT / 7, with RTT taken as 8 hop latencies, at least 4 packets.
    void InstallRed(Ptr<NetDevice> d, uint64_t bps, int64_t delayPs, uint32_t maxPackets,
                    uint32_t frameBytes)
    {
        double rtt = 8.0 * delayPs * 1e-12;
        double k = std::max(4.0, std::ceil(bps * rtt / 7.0 / (8.0 * frameBytes)));
        TrafficControlHelper tch;
        tch.SetRootQueueDisc("ns3::RedQueueDisc",
                             "MinTh", DoubleValue(k),
                             "MaxTh", DoubleValue(k),
                             "QW", DoubleValue(1.0),
                             "UseEcn", BooleanValue(true),
                             "UseHardDrop", BooleanValue(false),
                             "MeanPktSize", UintegerValue(frameBytes),
                             "LinkBandwidth", DataRateValue(DataRate(bps)),
                             "LinkDelay", TimeValue(PicoSeconds(delayPs)),
                             "MaxSize", QueueSizeValue(QueueSize(QueueSizeUnit::PACKETS,
                                                                 maxPackets)));
        QueueDiscContainer qd = tch.Install(d);
        m_red.push_back(DynamicCast<RedQueueDisc>(qd.Get(0)));
    }

    void AddAddress(Ptr<Node> n, Ptr<NetDevice> d, Ipv4Address a)
    {
        Ptr<Ipv4> ip = n->GetObject<Ipv4>();
        int32_t i = ip->AddInterface(d);
        ip->AddAddress(i, Ipv4InterfaceAddress(a, Ipv4Mask("255.255.255.252")));
        ip->SetMetric(i, 1);
        ip->SetUp(i);
    }

    void Start(uint32_t f)
    {
        Ptr<Socket> s = Socket::CreateSocket(m_nodes.Get(m_src[f]), TcpSocketFactory::GetTypeId());
        s->Bind();
        s->SetConnectCallback(MakeCallback(&TcpFabric::OnConnected, this, f),
                              MakeCallback(&TcpFabric::OnConnectFailed, this, f));
        s->SetSendCallback(MakeCallback(&TcpFabric::OnSendSpace, this, f));
        s->Connect(InetSocketAddress(m_gpuAddr[m_dst[f]], m_port[f]));
        m_sockets.push_back(s);
    }

    void OnConnected(uint32_t f, Ptr<Socket> s)
    {
        SendMore(f, s);
    }

    void OnConnectFailed(uint32_t f, Ptr<Socket>)
    {
        m_failed = "TCP connection of flow " + std::to_string(f) + " failed";
        Simulator::Stop();
    }

    void OnSendSpace(uint32_t f, Ptr<Socket> s, uint32_t)
    {
        SendMore(f, s);
    }

    void SendMore(uint32_t f, Ptr<Socket> s)
    {
        while (m_toSend[f] > 0)
        {
            uint32_t room = s->GetTxAvailable();
            if (room == 0)
            {
                return;
            }
            uint32_t chunk = (uint32_t)std::min<int64_t>({m_toSend[f], (int64_t)room, 1 << 20});
            int sent = s->Send(Create<Packet>(chunk), 0);
            if (sent <= 0)
            {
                return;
            }
            m_toSend[f] -= sent;
        }
        s->Close(); // FIN after the data
    }

    void OnAccept(uint32_t f, Ptr<Socket> s, const Address&)
    {
        s->SetRecvCallback(MakeCallback(&TcpFabric::OnRecv, this, f));
        m_sockets.push_back(s);
    }

    void OnRecv(uint32_t f, Ptr<Socket> s)
    {
        Ptr<Packet> p;
        while ((p = s->Recv(0xffffffff, 0)) && p->GetSize() > 0)
        {
            m_recv[f] += p->GetSize();
        }
        if (m_recv[f] == m_size[f] && m_finish && m_finish[f] < 0)
        {
            m_finish[f] = (Simulator::Now() - m_t0).GetPicoSeconds();
            s->Close();
            if (++m_done == m_numFlows)
            {
                // Let FIN/ACK exchanges and TIME_WAIT (MaxSegLifetime 1 us) play out, so the
                // next batch starts on an idle fabric; stop deterministically after that.
                m_abort.Cancel();
                m_abort = Simulator::Schedule(MilliSeconds(1), &TcpFabric::Abort, this);
            }
        }
    }

    void OnHop(Ptr<const Packet>)
    {
        ++m_hops;
        if (!m_over.empty())
        {
            return;
        }
        uint64_t events = Simulator::GetEventCount() - m_events0;
        if (events > m_maxEvents)
        {
            m_over = "budget: " + std::to_string(events) + " events, more than the budget of " +
                     std::to_string(m_maxEvents);
        }
        else if ((m_hops & 63) == 0)
        {
            double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                        m_wall0).count();
            if (wall > m_maxWallS)
            {
                m_over = "budget: " + std::to_string(wall) + " s of wall clock, more than the "
                         "budget of " + std::to_string(m_maxWallS) + " s";
            }
        }
        if (!m_over.empty())
        {
            Simulator::Stop();
        }
    }

    void Abort()
    {
        Simulator::Stop();
    }

    NodeContainer m_nodes;
    std::vector<Ptr<PointToPointNetDevice>> m_devices;
    std::vector<Ipv4Address> m_gpuAddr;
    std::vector<Ptr<Socket>> m_sockets;
    std::vector<Ptr<RedQueueDisc>> m_red;
    std::vector<int64_t> m_size, m_toSend, m_recv;
    std::vector<uint32_t> m_port;
    const int32_t* m_src{nullptr};
    const int32_t* m_dst{nullptr};
    int64_t* m_finish{nullptr};
    int32_t m_numFlows{0}, m_done{0}, m_numGpus{0};
    uint32_t m_segment{9000 - 52};
    uint64_t m_hops{0}, m_events{0}, m_events0{0};
    uint64_t m_maxEvents{UINT64_MAX};
    double m_maxWallS{1e300};
    std::chrono::steady_clock::time_point m_wall0;
    std::string m_over;
    bool m_dctcp{false};
    std::string m_failed;
    EventId m_abort;
    Time m_t0;
};

} // namespace cosim_ns3
