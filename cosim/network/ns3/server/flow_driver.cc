// cosim ns-3 fabric and flow driver, JIT-compiled by cppyy (ns.cppyy.cppdef) in the
// cosim-ns3-server process. SPDX-License-Identifier: GPL-2.0-only (links ns-3).
//
// The fabric: one ns-3 Node per graph node (GPUs, then switches) and, per *directed* graph
// link, one PointToPointChannel with a transmitting device at the link's source and a
// receiving device at its destination (so asymmetric rates/latencies and parallel links are
// exact). Device queues are deep DropTail queues: switches never drop, standing in for the
// credit-based (NVLink) / PFC (RoCE, InfiniBand) flow control of GPU fabrics.
//
// The driver: packets carry an 8-byte FlowHeader (flow id); every node forwards a packet on
// the next link of its flow's route (source routing: routes come with each batch, decided
// by the topology's router, so that the analytical and ns-3 backends use the same paths).
// A lossless line-rate sender per source link (NIC) keeps exactly one of its own packets
// waiting behind the one on the wire, taking packets round-robin from its active flows:
// the link runs at line rate and flows find their rates through the queues downstream.
// Nothing is paced at a rate computed elsewhere. Last-byte arrival is recorded here.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace cosim_ns3
{
using namespace ns3;

class FlowHeader : public Header
{
  public:
    uint32_t flow{0};

    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("cosim_ns3::FlowHeader")
                                .SetParent<Header>()
                                .SetGroupName("cosim")
                                .AddConstructor<FlowHeader>();
        return tid;
    }

    TypeId GetInstanceTypeId() const override
    {
        return GetTypeId();
    }

    uint32_t GetSerializedSize() const override
    {
        return 8;
    }

    void Serialize(Buffer::Iterator i) const override
    {
        i.WriteU32(flow);
        i.WriteU32(0);
    }

    uint32_t Deserialize(Buffer::Iterator i) override
    {
        flow = i.ReadU32();
        i.ReadU32();
        return 8;
    }

    void Print(std::ostream& os) const override
    {
        os << "flow=" << flow;
    }
};

static const uint32_t kHeaderBytes = 8;
static const uint16_t kProtocol = 0x0800; // any protocol PPP knows; nobody parses it

class Fabric
{
  public:
    // Build the fabric. Arrays have num_links entries; rates in bit/s, delays in ps.
    // Returns an empty string or an error message.
    std::string Build(int32_t numNodes,
                      int32_t numLinks,
                      const int32_t* linkSrc,
                      const int32_t* linkDst,
                      const uint64_t* linkBps,
                      const int64_t* linkDelayPs,
                      uint32_t queuePackets)
    {
        m_queuePackets = queuePackets;
        m_linkSrc.assign(linkSrc, linkSrc + numLinks);
        m_linkDst.assign(linkDst, linkDst + numLinks);
        for (int32_t n = 0; n < numNodes; ++n)
        {
            m_nodes.push_back(CreateObject<Node>());
        }
        m_tx.resize(numLinks);
        m_nic.resize(numLinks);
        for (int32_t l = 0; l < numLinks; ++l)
        {
            Ptr<PointToPointNetDevice> tx = CreateObject<PointToPointNetDevice>();
            Ptr<PointToPointNetDevice> rx = CreateObject<PointToPointNetDevice>();
            tx->SetAddress(Mac48Address::Allocate());
            rx->SetAddress(Mac48Address::Allocate());
            tx->SetDataRate(DataRate(linkBps[l]));
            rx->SetDataRate(DataRate(linkBps[l]));
            for (auto dev : {tx, rx})
            {
                Ptr<DropTailQueue<Packet>> q = CreateObject<DropTailQueue<Packet>>();
                q->SetMaxSize(QueueSize(QueueSizeUnit::PACKETS, queuePackets));
                q->TraceConnectWithoutContext("Drop", MakeCallback(&Fabric::OnDrop, this));
                dev->SetQueue(q);
            }
            m_nodes[linkSrc[l]]->AddDevice(tx);
            m_nodes[linkDst[l]]->AddDevice(rx);
            Ptr<PointToPointChannel> ch = CreateObject<PointToPointChannel>();
            ch->SetAttribute("Delay", TimeValue(PicoSeconds(linkDelayPs[l])));
            tx->Attach(ch);
            rx->Attach(ch);
            // After AddDevice (which installs the node's own handler): packets go to us.
            rx->SetReceiveCallback(MakeCallback(&Fabric::Receive, this, (uint32_t)l));
            m_tx[l] = tx;
        }
        return "";
    }

    // Per-batch budget: Run abandons the batch (Simulator::Stop) once it has processed more
    // than maxEvents ns-3 events or spent more than maxWallS seconds of wall clock. The
    // check runs on every packet hop (every event of a batch belongs to a packet's journey),
    // the clock read on every 64th. The fabric is then in mid-flight: the server resets ns-3.
    void SetBudget(uint64_t maxEvents, double maxWallS)
    {
        m_maxEvents = maxEvents;
        m_maxWallS = maxWallS;
    }

    // Set the frame size (bytes handed to a device per packet, FlowHeader included).
    std::string SetFrameBytes(uint32_t frameBytes)
    {
        // ns-3's Queue counts its bytes in a uint32_t (queue.h asserts on the wrap-around and
        // kills the process): bound each device queue so its bytes fit, at this frame size
        // (+2 bytes of PPP header per packet). A batch that needs more is reported as drops.
        const uint64_t fit = static_cast<uint64_t>(UINT32_MAX) / (frameBytes + 2u);
        const uint32_t cap = static_cast<uint32_t>(std::min<uint64_t>(m_queuePackets, fit));
        for (auto& d : m_tx)
        {
            if (!d->SetMtu(frameBytes))
            {
                return "device refused mtu " + std::to_string(frameBytes);
            }
            d->GetQueue()->SetMaxSize(QueueSize(QueueSizeUnit::PACKETS, cap));
        }
        m_payload = frameBytes - kHeaderBytes;
        return "";
    }

    // Run one batch to completion. Route CSR: flow f's links are
    // links[indptr[f] .. indptr[f+1]). Start offsets in ps relative to the batch start.
    // Writes each flow's last-byte arrival (ps since batch start) into finishPs and returns
    // "" or an error. bare=true: the bare ns-3 loop (benchmark baseline): all packets of
    // every flow are handed to the first device at once, no round-robin, no accounting.
    std::string Run(int32_t numFlows,
                    const int64_t* size,
                    const int64_t* startPs,
                    const int64_t* indptr,
                    const int32_t* links,
                    int64_t* finishPs,
                    bool bare)
    {
        m_bare = bare;
        m_indptr.assign(indptr, indptr + numFlows + 1);
        m_links.assign(links, links + indptr[numFlows]);
        m_toSend.assign(size, size + numFlows);
        m_toRecv.assign(size, size + numFlows);
        m_finish = finishPs;
        m_numFlows = numFlows;
        m_done = 0;
        m_hops = 0;
        m_drops = 0;
        for (auto& n : m_nic)
        {
            n.active.clear();
            n.rr = 0;
        }
        for (int32_t f = 0; f < numFlows; ++f)
        {
            finishPs[f] = -1;
        }
        m_events0 = Simulator::GetEventCount();
        m_wall0 = std::chrono::steady_clock::now();
        m_over = "";
        m_t0 = Simulator::Now();
        for (int32_t f = 0; f < numFlows; ++f)
        {
            Simulator::Schedule(PicoSeconds(startPs[f]), &Fabric::Activate, this, (uint32_t)f);
        }
        Simulator::Run();
        m_events = Simulator::GetEventCount() - m_events0;
        m_finish = nullptr;
        if (!m_over.empty())
        {
            return m_over;
        }
        if (m_drops > 0)
        {
            return std::to_string(m_drops) + " packets dropped (device queue full)";
        }
        if (!bare && m_done != m_numFlows)
        {
            return std::to_string(m_numFlows - m_done) + " flows did not complete";
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

    int64_t NowPs() const
    {
        return Simulator::Now().GetPicoSeconds();
    }

  private:
    struct Nic
    {
        std::vector<uint32_t> active; // flows whose first link is this one, bytes left
        size_t rr{0};                 // next flow to serve
        uint32_t pending{0};          // own packets waiting in the device queue
        std::deque<uint64_t> uids;    // uids of own packets not yet on the wire
        bool traced{false};           // PhyTxBegin connected
    };

    void Activate(uint32_t f)
    {
        uint32_t l = m_links[m_indptr[f]];
        if (m_bare)
        {
            while (m_toSend[f] > 0)
            {
                m_tx[l]->Send(MakePacket(f), m_tx[l]->GetBroadcast(), kProtocol);
            }
            return;
        }
        Nic& nic = m_nic[l];
        if (!nic.traced)
        {
            // Only links that source flows need the trace (switch ports do not pay for it).
            m_tx[l]->TraceConnectWithoutContext("PhyTxBegin",
                                                MakeCallback(&Fabric::TxBegin, this, l));
            nic.traced = true;
        }
        nic.active.push_back(f);
        if (nic.pending == 0)
        {
            Push(l);
        }
    }

    Ptr<Packet> MakePacket(uint32_t f)
    {
        uint32_t bytes = (uint32_t)std::min<int64_t>(m_payload, m_toSend[f]);
        m_toSend[f] -= bytes;
        Ptr<Packet> p = Create<Packet>(bytes);
        FlowHeader h;
        h.flow = f;
        p->AddHeader(h);
        return p;
    }

    // Hand the next own packet (round-robin over active flows) to link l's device.
    void Push(uint32_t l)
    {
        Nic& nic = m_nic[l];
        if (nic.active.empty())
        {
            return;
        }
        if (nic.rr >= nic.active.size())
        {
            nic.rr = 0;
        }
        uint32_t f = nic.active[nic.rr];
        Ptr<Packet> p = MakePacket(f);
        if (m_toSend[f] == 0)
        {
            nic.active.erase(nic.active.begin() + nic.rr);
        }
        else
        {
            ++nic.rr;
        }
        nic.pending++;
        nic.uids.push_back(p->GetUid());
        // May re-enter TxBegin (idle device): the invariant is restored there.
        m_tx[l]->Send(p, m_tx[l]->GetBroadcast(), kProtocol);
    }

    // A packet starts on link l's wire: if it was our oldest waiting one, queue the next,
    // so that one own packet always waits behind the one being sent (line rate, no gaps).
    void TxBegin(uint32_t l, Ptr<const Packet> p)
    {
        Nic& nic = m_nic[l];
        if (!nic.uids.empty() && nic.uids.front() == p->GetUid())
        {
            nic.uids.pop_front();
            nic.pending--;
            if (nic.pending == 0)
            {
                Push(l);
            }
        }
    }

    bool Receive(uint32_t l, Ptr<NetDevice>, Ptr<const Packet> cp, uint16_t, const Address&)
    {
        ++m_hops;
        if (OverBudget())
        {
            return true;
        }
        FlowHeader h;
        cp->PeekHeader(h);
        uint32_t f = h.flow;
        int64_t end = m_indptr[f + 1];
        for (int64_t k = m_indptr[f]; k < end - 1; ++k)
        {
            if ((uint32_t)m_links[k] == l)
            {
                // The device is done with the packet after this callback: forward it as is.
                uint32_t next = m_links[k + 1];
                m_tx[next]->Send(ConstCast<Packet>(cp), m_tx[next]->GetBroadcast(), kProtocol);
                return true;
            }
        }
        // Last link: the destination.
        if (m_bare || m_finish == nullptr)
        {
            return true;
        }
        m_toRecv[f] -= (int64_t)(cp->GetSize() - kHeaderBytes);
        if (m_toRecv[f] == 0)
        {
            m_finish[f] = (Simulator::Now() - m_t0).GetPicoSeconds();
            if (++m_done == m_numFlows)
            {
                Simulator::Stop();
            }
        }
        return true;
    }

    // True (and the simulation stopped) once the batch is over its event or wall budget.
    bool OverBudget()
    {
        if (!m_over.empty())
        {
            return true;
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
        if (m_over.empty())
        {
            return false;
        }
        Simulator::Stop();
        return true;
    }

    void OnDrop(Ptr<const Packet>)
    {
        ++m_drops;
    }

    std::vector<Ptr<Node>> m_nodes;
    std::vector<Ptr<PointToPointNetDevice>> m_tx;
    std::vector<int32_t> m_linkSrc, m_linkDst;
    std::vector<Nic> m_nic;
    std::vector<int64_t> m_indptr, m_toSend, m_toRecv;
    std::vector<int32_t> m_links;
    int64_t* m_finish{nullptr};
    int32_t m_numFlows{0};
    int32_t m_done{0};
    uint32_t m_payload{9000 - kHeaderBytes};
    uint32_t m_queuePackets{0};
    uint64_t m_hops{0};
    uint64_t m_drops{0};
    uint64_t m_events{0};
    uint64_t m_events0{0};
    uint64_t m_maxEvents{UINT64_MAX};
    double m_maxWallS{1e300};
    std::chrono::steady_clock::time_point m_wall0;
    std::string m_over;
    bool m_bare{false};
    Time m_t0;
};

} // namespace cosim_ns3
